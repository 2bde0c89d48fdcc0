"""Mapping an agent framework's nested runs onto goex runs and steps (framework-free).

LangChain callbacks and LlamaIndex spans both report "run X started inside run Y" and "run X
ended / failed". A `RunTracker` turns that into the journal's shape:

- a framework run with no known parent (the agent invocation) becomes a goex **run** whose id
  is the framework's run id, so `rollback(<framework run id>)` undoes the whole invocation;
- a tool call becomes a **step** whose id is the framework's run id: a `container` for a goex
  tool (the domain journals the effect as its child, so nothing is compensated twice), a
  `no_effect` step for a tool declared read-only, and an `irreversible` step (decided by the
  gate) for any other tool, because goex cannot undo what it did not journal;
- chains, graph nodes and model calls are only remembered, to find a tool's run and parent;
  an invocation that calls no tool leaves no run in the journal.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from goex_tools.errors import GoexError
from goex_tools.journal import Journal
from goex_tools.model import JSONDict, Proposal, Reversibility, Run, RunStatus, Step
from goex_tools.runtime import (
    Gate,
    RunContext,
    StepHandle,
    activate,
    get_journal,
    is_pause,
    summarize,
)
from goex_tools.threads import THREAD_KEY, Place

__all__ = ["HandlerConflict", "RunTracker", "ToolKind", "TrackedRuns", "call_in_thread"]

MAX_ID_LENGTH = 64  # the journal's id columns


class ToolKind(StrEnum):
    """How a framework tool's effects reach the journal."""

    JOURNALED = "journaled"  # a goex tool: its effects are journaled as child steps
    READ_ONLY = "read_only"  # declared by the user to change nothing
    OPAQUE = "opaque"  # anything else: its effect cannot be undone by goex


class HandlerConflict(GoexError):
    """Two handlers with different gates report the same framework run to one journal."""


_REVERSIBILITY = {
    ToolKind.JOURNALED: Reversibility.CONTAINER,
    ToolKind.READ_ONLY: Reversibility.NO_EFFECT,
    ToolKind.OPAQUE: Reversibility.IRREVERSIBLE,
}

# Which tracker journals a framework run, per journal: a second handler on the same journal
# (given twice in `callbacks`, a notebook cell run twice) follows the first, not a copy of it.
_claims: dict[tuple[str, str], RunTracker] = {}
_claims_lock = threading.Lock()


@dataclass
class _Root:
    """A framework invocation; its goex run is created with its first step, so that model
    calls, retrievals and chains that call no tool leave no empty runs behind."""

    key: str
    name: str
    metadata: JSONDict
    ctx: RunContext | None = None


@dataclass
class _Node:
    root: _Root
    parent: str | None  # key of the enclosing framework run
    handle: StepHandle | None = None  # set for tool calls, which are journaled as steps
    kind: ToolKind | None = None
    working: int = 0  # goex work under way inside this call (its body, maybe in a thread)
    abandoned: bool = False  # the framework stopped waiting: the work's own end journals it


class RunTracker:
    """Journals one framework's runs; shared by every invocation that reports to it."""

    def __init__(
        self,
        *,
        journal: Journal | str | None = None,
        gate: Gate | None = None,
        framework: str,
        gate_opaque_tools: bool = True,
    ) -> None:
        """`gate_opaque_tools=False` when the framework ignores errors raised by its tracing
        hooks (LlamaIndex): a refusal there would be journaled while the tool ran anyway."""
        self.journal = journal if isinstance(journal, Journal) else get_journal(journal)
        self.gate = gate
        self.gate_opaque_tools = gate_opaque_tools
        self.framework = framework
        self.run_ids: list[str] = []  # goex runs started, oldest first
        self._nodes: dict[str, _Node] = {}
        self._followed: dict[str, RunTracker] = {}  # runs another tracker journals
        self._lock = threading.RLock()

    @property
    def last_run_id(self) -> str | None:
        return self.run_ids[-1] if self.run_ids else None

    @property
    def busy(self) -> bool:
        """True while a framework run it journals has not ended."""
        with self._lock:
            return bool(self._nodes)

    def start(
        self,
        key: str,
        parent: str | None,
        *,
        name: str,
        tool: ToolKind | None = None,
        inputs: JSONDict | None = None,
        metadata: JSONDict | None = None,
        place: Place | None = None,
    ) -> None:
        """A framework run began. `tool` is None for chains, nodes and model calls.

        `place`: where in a conversation a tool call runs (its thread and checkpoint), kept
        in its step's effect (`goex_tools.threads`); the run takes the thread's id too.

        Raises HandlerConflict if another tracker with a different gate journals `key` to
        the same journal (its step, if any, is failed with the same message).
        """
        owner = self._claim(key)
        if owner is not None:
            with self._lock:
                self._followed[key] = owner
            return
        with self._lock:
            outer = self._nodes.get(parent) if parent is not None else None
            root = outer.root if outer else _Root(key, name, metadata or {})
            node = _Node(root=root, parent=parent if outer else None, kind=tool)
            self._nodes[key] = node
        if tool is not None:
            try:
                node.handle = self._begin_step(node, key, name, tool, inputs or {}, place)
            except BaseException:  # refused by the gate (journaled as such), or unjournalable
                self._forget(key)
                if node.root.key == key and node.root.ctx is not None:
                    node.root.ctx.end(RunStatus.FAILED)
                raise

    def end(self, key: str, output: Any = None, *, error: BaseException | None = None) -> None:
        """A framework run ended; `error` says it failed (raised, or returned an error).

        A tool call whose goex work is still under way (a sync tool in a thread whose caller
        was cancelled) is journaled when that work returns, with the work's own outcome.
        """
        with self._lock:
            owner = self._followed.pop(key, None)
            if owner is not None:
                if _fit(key) in owner.run_ids and _fit(key) not in self.run_ids:
                    self.run_ids.append(_fit(key))
                return
            node = self._nodes.get(key)
            if node is None:
                return
            if node.working:
                node.abandoned = True
            else:
                self._forget(key)
        if not node.abandoned:
            self._close(node, output, error)
        if node.root.key == key:
            self._end_root(node.root, error)

    def knows(self, key: str) -> bool:
        """True while the framework run `key` is being tracked."""
        with self._lock:
            return key in self._nodes or key in self._followed

    def run_of(self, key: str) -> str | None:
        """The goex run id of the invocation a framework run belongs to (None before its first
        tool call, or if it is not tracked)."""
        with self._lock:
            owner = self._followed.get(key)
            node = self._nodes.get(key)
        if owner is not None:
            return owner.run_of(key)
        return node.root.ctx.id if node and node.root.ctx else None

    @contextmanager
    def scope(self, key: str) -> Iterator[None]:
        """Inside the framework run `key` (a tool call): make goex steps its children.

        The call's end waits for the block: if the framework reports the end first (it
        stopped waiting), the call is journaled when the block exits.
        """
        with self._lock:
            owner = self._followed.get(key)
        if owner is not None:
            with owner.scope(key):
                yield
            return
        release = self.hold(key)
        error: BaseException | None = None
        try:
            with self._lock:
                node = self._nodes.get(key)
                parent_step = self._nearest_step(key)
            if node is None:
                yield
                return
            ctx = self._run(node.root)
            with activate(RunContext(ctx.journal, ctx.run, self.gate), parent_step):
                yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            release(error)

    def hold(self, key: str) -> Callable[[BaseException | None], None]:
        """Keep the call `key` open until the returned `release(error)` is called: work for
        it is about to start elsewhere (a thread) and its end must wait for that work."""
        with self._lock:
            owner = self._followed.get(key)
            node = self._nodes.get(key)
            if owner is None and node is not None:
                node.working += 1
        if owner is not None:
            return owner.hold(key)
        if node is None:
            return lambda error: None
        released = threading.Event()

        def release(error: BaseException | None) -> None:
            if released.is_set():
                return
            released.set()
            with self._lock:
                node.working -= 1
                finish = node.working == 0 and node.abandoned
                if finish and self._nodes.get(key) is node:
                    self._forget(key)
            if finish:
                if node.handle is not None:
                    node.handle.notes.append(
                        "the framework stopped waiting for this call (cancelled); journaled "
                        "when its work returned"
                    )
                self._close(node, None, error)

        return release

    def steps(self, run_id: str | None = None) -> list[Step]:
        """The steps of `run_id` (default: the last run started)."""
        wanted = run_id or self.last_run_id
        return self.journal.steps(wanted) if wanted else []

    def _claim(self, key: str) -> RunTracker | None:
        """The tracker already journaling `key` to this journal, if another one is."""
        with _claims_lock:
            owner = _claims.setdefault((self.journal.url, key), self)
        if owner is self:
            return None
        if owner.gate is not self.gate or owner.framework != self.framework:
            conflict = HandlerConflict(
                f"two goex {self.framework} handlers with different gates journal the same "
                f"call to {self.journal!r}; give them the same gate, or use one handler"
            )
            owner.end(key, error=conflict)
            raise conflict
        return owner

    def _forget(self, key: str) -> None:
        """Stop tracking `key` (lock held, or no other thread knows the key yet)."""
        with self._lock:
            self._nodes.pop(key, None)
        with _claims_lock:
            if _claims.get((self.journal.url, key)) is self:
                del _claims[(self.journal.url, key)]

    def _close(self, node: _Node, output: Any, error: BaseException | None) -> None:
        """Journal the end of a tool call's step."""
        if node.handle is None:
            return
        if error is None:
            node.handle.finish(output)
        elif isinstance(error, asyncio.CancelledError) and node.kind is not ToolKind.JOURNALED:
            # goex cannot see whether a cancelled non-goex tool ran (in a thread it goes on)
            node.handle.notes.append("cancelled while running: it may have had its effect")
            node.handle.finish(None)
        else:
            node.handle.fail(error)

    def _end_root(self, root: _Root, error: BaseException | None) -> None:
        """The invocation ended: so did every call in it the framework did not report."""
        if root.ctx is not None:
            failed = error is not None and not is_pause(error)
            root.ctx.end(RunStatus.FAILED if failed else RunStatus.COMPLETED)
        with self._lock:
            left = [(k, n) for k, n in self._nodes.items() if n.root is root]
            for key, node in left:
                if node.working:
                    node.abandoned = True
                else:
                    self._forget(key)
        unreported = error or _Unreported("the invocation ended before this call reported its end")
        for _, node in left:
            if not node.working:
                self._close(node, None, unreported)

    def _run(self, root: _Root, place: Place | None = None) -> RunContext:
        with self._lock:
            if root.ctx is None:
                if place is not None and "thread_id" not in root.metadata:
                    root.metadata = {**root.metadata, "thread_id": place.thread_id}
                record = Run(
                    id=_fit(root.key),
                    name=root.name,
                    metadata={"framework": self.framework, **root.metadata},
                )
                root.ctx = RunContext(self.journal, self.journal.ensure_run(record), None)
                self.run_ids.append(root.ctx.id)
            return root.ctx

    def _begin_step(
        self,
        node: _Node,
        key: str,
        name: str,
        tool: ToolKind,
        inputs: JSONDict,
        place: Place | None,
    ) -> StepHandle:
        # Containers and read-only calls change nothing themselves: no gate to pass. An opaque
        # tool's effect is one goex cannot undo, so the gate decides on it like any other.
        gate = self.gate if tool is ToolKind.OPAQUE and self.gate_opaque_tools else None
        proposal = Proposal(
            tool=name,
            domain=self.framework,
            inputs=summarize(inputs),
            reversibility=_REVERSIBILITY[tool],
            notes=[_NOTES[tool]] if tool in _NOTES else [],
        )
        with self._lock:
            parent_step = self._nearest_step(node.parent)
        run = self._run(node.root, place)
        handle = RunContext(run.journal, run.run, gate).begin(
            proposal, step_id=_fit(key), parent_id=parent_step
        )
        if place is not None:  # journaled with the call's outcome
            handle.effect[THREAD_KEY] = place.model_dump(mode="json", exclude_defaults=True)
        return handle

    def _nearest_step(self, key: str | None) -> str | None:
        """The id of the closest enclosing framework run journaled as a step (lock held)."""
        while key is not None:
            node = self._nodes.get(key)
            if node is None:
                return None
            if node.handle is not None:
                return node.handle.id
            key = node.parent
        return None


class _Unreported(GoexError):
    """A tool call the framework never reported ended (its invocation did)."""


async def call_in_thread(
    tracker: RunTracker | None, key: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """Await a sync tool call `fn(*args, **kwargs)` run in a worker thread.

    Cancelling the awaiting task does not stop a thread: the call `key` stays open in the
    tracker until the thread returns, then is journaled with the thread's outcome (instead
    of a pending step, or a failed one whose effect then happens).
    """
    release = tracker.hold(key) if tracker is not None else (lambda error: None)
    lock = threading.Lock()
    state = {"started": False, "skipped": False}

    def work() -> Any:
        with lock:
            if state["skipped"]:
                return None
            state["started"] = True
        error: BaseException | None = None
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            release(error)

    context = contextvars.copy_context()
    try:
        return await asyncio.get_running_loop().run_in_executor(None, context.run, work)
    except asyncio.CancelledError as exc:
        with lock:
            never_ran = not state["started"]
            state["skipped"] = never_ran
        if never_ran:
            release(exc)
        raise


class TrackedRuns:
    """What a framework handler tells about the runs it journaled (mixin over `_tracker`)."""

    _tracker: RunTracker

    @property
    def tracker(self) -> RunTracker:
        return self._tracker

    @property
    def run_ids(self) -> list[str]:
        """Goex run ids of the invocations seen so far (framework root ids), oldest first."""
        return list(self._tracker.run_ids)

    @property
    def last_run_id(self) -> str | None:
        return self._tracker.last_run_id

    def steps(self, run_id: str | None = None) -> list[Step]:
        """The journaled steps of `run_id` (default: the last invocation)."""
        return self._tracker.steps(run_id)


_NOTES = {
    ToolKind.OPAQUE: "not a goex tool: its effect was not journaled and cannot be undone",
    ToolKind.READ_ONLY: "declared read-only: nothing to undo",
}


def _fit(key: str) -> str:
    """A framework id short enough for the journal (LlamaIndex span ids can be long)."""
    return key if len(key) <= MAX_ID_LENGTH else key[-MAX_ID_LENGTH:]
