"""`GoexSpanHandler`: LlamaIndex agent runs journaled as goex runs and steps.

It listens on LlamaIndex's instrumentation dispatcher. A root span (an agent's or workflow's
`run`) becomes a goex run whose id is the span id, created with its first tool call; each
tool call (`call`/`acall` span of a tool) becomes a step with the span's id. See
`goex_tools.tracker` for how goex tools, read-only tools and other tools are journaled.

Each call records its thread: the `thread_id` instrument tag when the caller sets one
(`with instrument_tags({"thread_id": ...}): workflow.run(...)`), which ties together the
runs of a workflow resumed from a serialized `Context`; else the workflow run's own id.

LlamaIndex ignores errors raised by span handlers, so the handler cannot stop a non-goex tool:
such tools are journaled as irreversible without asking the gate. To put a tool under policy,
make it a goex tool (`reversible_function_tool`, `undo=None` for a one-way action).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable
from typing import Any

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.tools import BaseTool, FunctionTool, ToolOutput
from llama_index.tools.goex.function_tool import is_goex_tool
from pydantic import PrivateAttr

from goex_tools.journal import Journal
from goex_tools.runtime import Gate, register_pause
from goex_tools.threads import Place
from goex_tools.tracker import HandlerConflict, RunTracker, ToolKind, TrackedRuns

TOOL_METHODS = ("call", "acall")
THREAD_TAG = "thread_id"  # an instrument tag naming the conversation a run belongs to
RUN_TAG = "llamaindex.run_id"  # the tag workflows give every span of one run

try:  # workflows >= 2.9 pause a step by raising this, and replay the step on the event
    from workflows.runtime.types.results import WaitingForEvent
except ImportError:  # pragma: no cover
    pass
else:
    register_pause(WaitingForEvent)


class ToolCallFailed(Exception):
    """A tool call that returned an error output instead of raising."""


class GoexSpanHandler(TrackedRuns, BaseSpanHandler[SimpleSpan]):
    """Journals LlamaIndex runs; `install()` it on the root dispatcher.

    - `journal`: a Journal or URL (default: GOEX_JOURNAL_URL or .goex/journal.db).
    - `gate`: decides on every goex tool's proposal (policy, approval).
    - `read_only_tools`: names of non-goex tools that change nothing (retrievers, lookups);
      AgentWorkflow's `handoff` tool is always taken as one.
    """

    _tracker: RunTracker = PrivateAttr()
    _read_only: frozenset[str] = PrivateAttr()
    _tool_spans: set[str] = PrivateAttr(default_factory=set)
    _spans_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        *,
        journal: Journal | str | None = None,
        gate: Gate | None = None,
        read_only_tools: Iterable[str] = (),
    ) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._tracker = RunTracker(
            journal=journal, gate=gate, framework="llamaindex", gate_opaque_tools=False
        )
        self._read_only = frozenset(read_only_tools)

    @classmethod
    def class_name(cls) -> str:
        return "GoexSpanHandler"

    def install(self) -> GoexSpanHandler:
        """Listen on LlamaIndex's root dispatcher (every library span reaches it).

        Installing it again changes nothing. Another handler installed on the same journal
        with the same gate follows this one (a notebook cell run twice journals each call
        once). Raises HandlerConflict if one with another gate is installed on the journal
        (LlamaIndex ignores a handler's errors, so the conflict cannot wait for a call).
        """
        with _installed_lock:
            mine = self.tracker
            for other in _installed:
                same_journal = other.tracker.journal.url == mine.journal.url
                if other is not self and same_journal and other.tracker.gate is not mine.gate:
                    raise HandlerConflict(
                        f"a GoexSpanHandler with another gate is installed on "
                        f"{mine.journal!r}; uninstall it first "
                        f"(installed_handlers() lists them), or give both the same gate"
                    )
            dispatcher = get_dispatcher()
            if self not in dispatcher.span_handlers:
                dispatcher.add_span_handler(self)
            if self not in _installed:
                _installed.append(self)
        return self

    def uninstall(self) -> None:
        """Stop listening (however many times it was installed)."""
        with _installed_lock:
            dispatcher = get_dispatcher()
            dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not self]
            if self in _installed:
                _installed.remove(self)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        kind = None
        name = id_.rsplit("-", 5)[0]
        if isinstance(instance, BaseTool) and name.rsplit(".", 1)[-1] in TOOL_METHODS:
            name = instance.metadata.get_name()
            with self._spans_lock:
                nested = parent_span_id in self._tool_spans  # an adapter calling its tool
                self._tool_spans.add(id_)
            if not nested:
                kind = self._kind(instance, name)
        self._tracker.start(
            id_,
            parent_span_id,
            name=name,
            tool=kind,
            inputs=_inputs(bound_args) if kind else None,
            place=_place(tags or {}, parent_span_id) if kind else None,
        )
        return SimpleSpan(id_=id_, parent_id=parent_span_id, tags=tags or {})

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        error = None
        if isinstance(result, ToolOutput):
            if result.is_error:
                error = ToolCallFailed(result.content)
            result = result.content
        self._finish(id_, result, error)
        return self.open_spans.get(id_)

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        self._finish(id_, None, err or ToolCallFailed("the call was cancelled"))
        return self.open_spans.get(id_)

    def _finish(self, id_: str, result: Any, error: BaseException | None) -> None:
        with self._spans_lock:
            self._tool_spans.discard(id_)
        self._tracker.end(id_, result, error=error)

    def _kind(self, tool: BaseTool, name: str) -> ToolKind:
        if is_goex_tool(tool):
            return ToolKind.JOURNALED
        if name in self._read_only or _is_handoff(tool):
            return ToolKind.READ_ONLY
        return ToolKind.OPAQUE


_installed: list[GoexSpanHandler] = []
_installed_lock = threading.Lock()


def installed_handlers() -> list[GoexSpanHandler]:
    """The handlers installed in this process, newest last."""
    return list(_installed)


def _is_handoff(tool: BaseTool) -> bool:
    """AgentWorkflow's own `handoff` tool: it only passes control to another agent."""
    try:
        from llama_index.core.agent.workflow.multi_agent_workflow import handoff
    except ImportError:  # a LlamaIndex without multi-agent workflows
        return False
    return isinstance(tool, FunctionTool) and tool.real_fn is handoff


def _inputs(bound_args: inspect.BoundArguments) -> dict[str, Any]:
    arguments = dict(bound_args.arguments)
    kwargs = arguments.pop("kwargs", {}) or {}
    args = arguments.pop("args", ()) or ()
    inputs = {k: v for k, v in kwargs.items() if not _is_context(v)}
    if args:
        inputs["args"] = list(args)
    return inputs


def _place(tags: dict[str, Any], parent_span_id: str | None) -> Place | None:
    """Where a tool call runs: its thread (the `thread_id` instrument tag the caller set, as
    `with instrument_tags({"thread_id": ...})`, else the workflow run's id) and the workflow
    step that called it (`point`)."""
    thread_id = tags.get(THREAD_TAG) or tags.get(RUN_TAG)
    if thread_id is None:
        return None
    step = parent_span_id.rsplit("-", 5)[0] if parent_span_id else None
    return Place(thread_id=str(thread_id), point=step)


def _is_context(value: Any) -> bool:
    return type(value).__name__ == "Context"  # a workflow Context handed to the tool
