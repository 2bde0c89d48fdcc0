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

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from goex_tools.journal import Journal
from goex_tools.model import JSONDict, Proposal, Reversibility, Run, RunStatus, Step
from goex_tools.runtime import Gate, RunContext, StepHandle, activate, get_journal, summarize

MAX_ID_LENGTH = 64  # the journal's id columns


class ToolKind(StrEnum):
    """How a framework tool's effects reach the journal."""

    JOURNALED = "journaled"  # a goex tool: its effects are journaled as child steps
    READ_ONLY = "read_only"  # declared by the user to change nothing
    OPAQUE = "opaque"  # anything else: its effect cannot be undone by goex


_REVERSIBILITY = {
    ToolKind.JOURNALED: Reversibility.CONTAINER,
    ToolKind.READ_ONLY: Reversibility.NO_EFFECT,
    ToolKind.OPAQUE: Reversibility.IRREVERSIBLE,
}


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
        self._lock = threading.RLock()

    @property
    def last_run_id(self) -> str | None:
        return self.run_ids[-1] if self.run_ids else None

    def start(
        self,
        key: str,
        parent: str | None,
        *,
        name: str,
        tool: ToolKind | None = None,
        inputs: JSONDict | None = None,
        metadata: JSONDict | None = None,
    ) -> None:
        """A framework run began. `tool` is None for chains, nodes and model calls."""
        with self._lock:
            outer = self._nodes.get(parent) if parent is not None else None
            root = outer.root if outer else _Root(key, name, metadata or {})
            node = _Node(root=root, parent=parent if outer else None)
            self._nodes[key] = node
        if tool is not None:
            node.handle = self._begin_step(node, key, name, tool, inputs or {})

    def end(self, key: str, output: Any = None, *, error: BaseException | None = None) -> None:
        """A framework run ended; `error` says it failed (raised, or returned an error)."""
        with self._lock:
            node = self._nodes.pop(key, None)
        if node is None:
            return
        if node.handle is not None:
            if error is not None:
                node.handle.fail(error)
            else:
                node.handle.finish(output)
        if node.root.key == key:
            if node.root.ctx is not None:
                node.root.ctx.end(RunStatus.FAILED if error is not None else RunStatus.COMPLETED)
            with self._lock:
                for other in [k for k, n in self._nodes.items() if n.root is node.root]:
                    del self._nodes[other]

    def knows(self, key: str) -> bool:
        """True while the framework run `key` is being tracked."""
        with self._lock:
            return key in self._nodes

    def run_of(self, key: str) -> str | None:
        """The goex run id of the invocation a framework run belongs to (None before its first
        tool call, or if it is not tracked)."""
        with self._lock:
            node = self._nodes.get(key)
        return node.root.ctx.id if node and node.root.ctx else None

    def scope(self, key: str) -> AbstractContextManager[Any]:
        """Inside the framework run `key` (a tool call): make goex steps its children."""
        with self._lock:
            node = self._nodes.get(key)
            parent_step = self._nearest_step(key)
        if node is None:
            return nullcontext()
        ctx = self._run(node.root)
        return activate(RunContext(ctx.journal, ctx.run, self.gate), parent_step)

    def steps(self, run_id: str | None = None) -> list[Step]:
        """The steps of `run_id` (default: the last run started)."""
        wanted = run_id or self.last_run_id
        return self.journal.steps(wanted) if wanted else []

    def _run(self, root: _Root) -> RunContext:
        with self._lock:
            if root.ctx is None:
                record = Run(
                    id=_fit(root.key),
                    name=root.name,
                    metadata={"framework": self.framework, **root.metadata},
                )
                root.ctx = RunContext(self.journal, self.journal.ensure_run(record), None)
                self.run_ids.append(root.ctx.id)
            return root.ctx

    def _begin_step(
        self, node: _Node, key: str, name: str, tool: ToolKind, inputs: JSONDict
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
        run = self._run(node.root)
        return RunContext(run.journal, run.run, gate).begin(
            proposal, step_id=_fit(key), parent_id=parent_step
        )

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
