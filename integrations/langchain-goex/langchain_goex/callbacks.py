"""`GoexCallbackHandler`: LangChain runs journaled as goex runs and steps.

The root run of an invocation (an agent graph, a chain, a lone tool) becomes a goex run with
the same id, so `goex.rollback(str(root_run_id))` undoes the whole invocation and
`goex.rollback(..., steps=N)` its last N effects, in the order the tools were called.
Each tool call is a step whose id is the tool's LangChain run id; see `goex_tools.tracker` for
how goex tools, read-only tools and other tools are journaled. An invocation resumed after an
interrupt (human in the loop) is a new invocation, so a run of its own; both carry the
LangGraph `thread_id` in their metadata. Inside a graph with a checkpointer each tool call
also records where it ran: the thread and the checkpoint every graph level was at
(`goex_tools.threads.Place`), which `langchain_goex.rewind` needs to bring the world back
to a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import ToolException

from goex_tools.journal import Journal
from goex_tools.runtime import Gate, register_pause
from goex_tools.threads import Place
from goex_tools.tracker import RunTracker, ToolKind, TrackedRuns

_CHECKPOINT_MAP = "checkpoint_map"  # LangGraph's config key: graph level -> checkpoint id
_NS_SEP = "|"  # LangGraph's separator of graph levels in a checkpoint namespace

GOEX_METADATA_KEY = "goex"
"""Tool metadata key marking how a tool is journaled: "journaled" (a goex tool) or "inner"."""

try:  # LangGraph is optional: without it there is nothing to pause
    from langgraph.errors import GraphBubbleUp, GraphInterrupt
except ImportError:  # pragma: no cover
    _CONTROL_FLOW: tuple[type[BaseException], ...] = ()
else:
    _CONTROL_FLOW = (GraphBubbleUp,)
    register_pause(GraphInterrupt)  # interrupt(): the call is replayed when the graph resumes


def is_control_flow(exc: BaseException) -> bool:
    """LangGraph's control flow (`interrupt()`, a `Command` to a parent graph): it passes
    through goex tools untouched, never turned into a tool error."""
    return isinstance(exc, _CONTROL_FLOW)


class GoexCallbackHandler(TrackedRuns, BaseCallbackHandler):
    """Journals LangChain invocations; pass it in `config={"callbacks": [handler]}`.

    - `journal`: a Journal or URL (default: GOEX_JOURNAL_URL or .goex/journal.db).
    - `gate`: decides on every goex tool's proposal (policy, approval) and on other tools,
      which are journaled as irreversible.
    - `read_only_tools`: names of non-goex tools that change nothing (search, lookups).
    """

    raise_error = True  # a refused or unjournalable tool call must not run anyway
    run_inline = True  # journal in call order, also under async invocations

    def __init__(
        self,
        *,
        journal: Journal | str | None = None,
        gate: Gate | None = None,
        read_only_tools: Iterable[str] = (),
    ) -> None:
        self._tracker = RunTracker(journal=journal, gate=gate, framework="langchain")
        self.read_only_tools = frozenset(read_only_tools)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        about: dict[str, Any] = {"tags": tags or []}
        if metadata and metadata.get("thread_id") is not None:  # a LangGraph conversation
            about["thread_id"] = str(metadata["thread_id"])
        self._tracker.start(
            str(run_id), _key(parent_run_id), name=_name(serialized, kwargs), metadata=about
        )

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._tracker.end(str(run_id))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._tracker.end(str(run_id), error=error)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs)
        marker = (metadata or {}).get(GOEX_METADATA_KEY)
        if marker == "inner":  # the wrapped tool inside a reversible_tool: its step is made
            kind = None
        elif marker == "journaled":
            kind = ToolKind.JOURNALED
        elif name in self.read_only_tools:
            kind = ToolKind.READ_ONLY
        else:
            kind = ToolKind.OPAQUE
        self._tracker.start(
            str(run_id),
            _key(parent_run_id),
            name=name,
            tool=kind,
            inputs=inputs if inputs is not None else {"input": input_str},
            place=_place() if kind is not None else None,
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        error = None
        if isinstance(output, ToolMessage):
            if output.status == "error":  # a handled ToolException: the call failed
                error = ToolException(str(output.content))
            output = output.content
        self._tracker.end(str(run_id), output, error=error)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._tracker.end(str(run_id), error=error)


def _place() -> Place | None:
    """Where the tool being called runs: the LangGraph thread, and the checkpoint each graph
    level (root, subgraphs) was at when its task started, read from the config LangGraph runs
    the calling node with (callbacks run in its context). None outside a checkpointed graph."""
    config = var_child_runnable_config.get() or {}
    configurable = config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    checkpoints = configurable.get(_CHECKPOINT_MAP) or {}
    if thread_id is None or not isinstance(checkpoints, dict) or not checkpoints:
        return None
    task_ns = str(configurable.get("checkpoint_ns") or "")
    ns = task_ns.rpartition(_NS_SEP)[0] if _NS_SEP in task_ns else ""
    if ns not in checkpoints:  # the deepest graph level the map knows
        ns = max(checkpoints, key=len)
    return Place(
        thread_id=str(thread_id),
        checkpoint_ns=ns,
        checkpoint_id=str(checkpoints[ns]),
        checkpoints={str(k): str(v) for k, v in checkpoints.items()},
        task_ns=task_ns,
    )


def _key(run_id: UUID | None) -> str | None:
    return str(run_id) if run_id is not None else None


def _name(serialized: dict[str, Any] | None, kwargs: dict[str, Any]) -> str:
    name = kwargs.get("name") or (serialized or {}).get("name")
    if not name and serialized and serialized.get("id"):
        name = serialized["id"][-1]
    return str(name or "run")
