"""Threads: the runs of one agent conversation, and rewinding the world to a point in it.

A framework that keeps a conversation in checkpoints (LangGraph's checkpointer) lets a person
go back to an earlier checkpoint and resume from there: the agent forgets what came after,
but the files, rows and API objects its tools changed stay changed. Here the two go back
together. Each run of a conversation carries its `thread_id` in its metadata, and each tool
call records where it ran (`Place`, in its step's `effect["thread"]`): the thread and the
checkpoint it ran after, at every graph level. `rewind` undoes, newest first, every effect of
the thread's tool calls made after a checkpoint, across all the thread's runs (a resumed,
replayed or forked conversation is several runs).

A call was made after checkpoint C if C existed when it started: it ran after C or after a
later checkpoint (LangGraph's checkpoint ids are UUIDv6, ordered by the time they were made),
or it started later than C was made (a replay from an older checkpoint, made after C).

Before undoing anything a rewind checks every step it would undo: a step with no undo
(irreversible), one whose effect may not have finished (pending), a run whose agent may
still be running, and, through each compensation kind's `preview`, an undo that would meet a
conflict. Any of them stops it with nothing undone, and the report names the steps.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TypedDict

from pydantic import BaseModel, Field

from goex_tools.errors import GoexError, InvalidArgument, NotFound, RollbackFailed
from goex_tools.journal import Journal, get_journal
from goex_tools.model import (
    JSONDict,
    RollbackReport,
    Run,
    RunStatus,
    Step,
    StepOutcome,
    StepStatus,
)
from goex_tools.owner import Liveness, liveness
from goex_tools.recovery import settle
from goex_tools.rollback import (
    OnIrreversible,
    RetryPolicy,
    agent_running,
    foresee_conflicts,
    needs_undo,
    settle_run_status,
    top_level,
    undo_step,
)

__all__ = [
    "THREAD_KEY",
    "Checkpoint",
    "CheckpointCalls",
    "Place",
    "RewindOptions",
    "RewindReport",
    "checkpoint_time",
    "made_after",
    "mark",
    "named_point",
    "place_of",
    "plan_rewind",
    "rewind",
    "thread_checkpoints",
    "thread_steps",
]

ROOT = ""  # the namespace of a root graph's checkpoints
THREAD_KEY = "thread"
"""The key of a tool call's `effect` holding its `Place`."""

_UUID_EPOCH = datetime(1582, 10, 15, tzinfo=UTC)  # UUIDv1 and v6 count 100 ns from here
_BLOCKING = ("irreversible", "pending", "busy", "failed", "conflict")


class Place(BaseModel):
    """Where in a conversation a tool call ran.

    - `thread_id`: the conversation (LangGraph's `thread_id`).
    - `checkpoint_ns`: the graph level the call ran in (`""` the root graph, else a subgraph's
      namespace).
    - `checkpoint_id`: the checkpoint of that graph the call ran after.
    - `checkpoints`: the checkpoint each enclosing graph level was at (namespace -> id).
    - `task_ns`: the namespace of the graph task that made the call (LangGraph's
      `checkpoint_ns` of the node running the tool: `tools:<task id>`, a subgraph's
      `agent:<task id>|tools:<task id>`).
    - `point`: a named point instead of a checkpoint (a LlamaIndex workflow step).
    """

    thread_id: str
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    checkpoints: dict[str, str] = Field(default_factory=dict)
    task_ns: str = ""
    point: str | None = None

    def task_at(self, checkpoint_ns: str) -> str | None:
        """The id of the task, at the graph level `checkpoint_ns`, that the call ran in."""
        depth = len(checkpoint_ns.split("|")) if checkpoint_ns else 0
        levels = self.task_ns.split("|") if self.task_ns else []
        return levels[depth].rpartition(":")[2] if depth < len(levels) else None


def place_of(step: Step) -> Place | None:
    """The place a tool call recorded, if it recorded one."""
    data = step.effect.get(THREAD_KEY)
    return Place.model_validate(data) if isinstance(data, dict) else None


@lru_cache(maxsize=4096)
def checkpoint_time(checkpoint_id: str) -> datetime | None:
    """When a checkpoint was made, read from its id (a time-ordered UUID: v1, v6 or v7, as
    LangGraph's checkpointers make them), or None for an id that carries no time."""
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version == 6:
        high = value.int >> 64
        ticks = ((high >> 16) << 12) | (high & 0x0FFF)
    elif value.version == 1:
        ticks = value.time
    elif value.version == 7:
        return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)
    else:
        return None
    return _UUID_EPOCH + timedelta(microseconds=ticks // 10)


class Checkpoint(BaseModel):
    """A point of a thread to rewind to: a checkpoint, and when it was made (read from its id
    unless `created_at` is given).

    `known`: every root-graph checkpoint id the thread's checkpointer holds, when the caller
    can tell (the LangGraph door reads them from the graph). A tool call that ran after a
    root checkpoint not among them belongs to another graph using the same thread id: it is
    left alone, and the report's notes name it.
    """

    thread_id: str
    checkpoint_id: str
    checkpoint_ns: str = ""
    created_at: datetime | None = None
    known: frozenset[str] | None = None

    @property
    def time(self) -> datetime:
        """When the checkpoint was made. Raises InvalidArgument if nobody can tell."""
        found = checkpoint_time(self.checkpoint_id) or self.created_at
        if found is None:
            raise InvalidArgument(
                f"checkpoint {self.checkpoint_id!r} carries no time in its id; give its "
                f"created_at (LangGraph's StateSnapshot.created_at)"
            )
        return found if found.tzinfo else found.replace(tzinfo=UTC)

    @property
    def config(self) -> JSONDict:
        """The config a LangGraph graph resumes from at this checkpoint."""
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.checkpoint_ns,
                "checkpoint_id": self.checkpoint_id,
            }
        }


def made_after(call: Step, checkpoint: Checkpoint) -> bool:
    """True if the tool call `call` started once `checkpoint` existed: it ran after it or
    after a later checkpoint, or it started later (a replay from an older checkpoint)."""
    place = place_of(call)
    at = checkpoint.time
    if place is not None:
        for ran_after in place.checkpoints.values():
            if ran_after == checkpoint.checkpoint_id:
                return True
            made = checkpoint_time(ran_after)
            if made is not None and made > at:
                return True
    return call.created_at > at


def thread_steps(thread_id: str, *, journal: Journal | str | None = None) -> list[Step]:
    """Every step of the thread's runs, in journal order, except tool calls (with the steps
    nested in them) that recorded another thread."""
    store = get_journal(journal)
    found: list[Step] = []
    for run in store.find_runs(thread_id=thread_id):
        steps = store.steps(run.id)
        top = top_level(steps)
        by_id = {s.id: s for s in steps}
        others = {
            call
            for call in set(top.values())
            if (place := place_of(by_id[call])) is not None and place.thread_id != thread_id
        }
        found += [s for s in steps if top[s.id] not in others]
    return sorted(found, key=lambda s: s.seq or 0)


def plan_rewind(checkpoint: Checkpoint, *, journal: Journal | str | None = None) -> list[Step]:
    """The steps a rewind to `checkpoint` would undo, newest first: the effects, not undone
    yet, of the thread's tool calls made after it (each call with everything nested in it)."""
    return _plan(checkpoint, get_journal(journal))[0]


def _plan(checkpoint: Checkpoint, journal: Journal) -> tuple[list[Step], list[str], list[str]]:
    """The steps to undo, newest first, the tool calls they belong to, and the calls made
    after the checkpoint that belong to another graph using the same thread id."""
    steps = thread_steps(checkpoint.thread_id, journal=journal)
    top = _calls(steps)
    by_id = {s.id: s for s in steps}
    after = {call for call in set(top.values()) if made_after(by_id[call], checkpoint)}
    foreign = {call for call in after if not _ours(by_id[call], checkpoint)}
    todo = [s for s in steps if top[s.id] in after - foreign and needs_undo(s)]
    todo.sort(key=lambda s: s.seq or 0, reverse=True)
    others = [s.id for s in steps if s.id in foreign and _has_effects(s, top, steps)]
    return todo, list(dict.fromkeys(top[s.id] for s in todo)), others


def _ours(call: Step, checkpoint: Checkpoint) -> bool:
    """False for a call that ran after a root checkpoint the thread's checkpointer does not
    hold (`Checkpoint.known`): another graph (another checkpointer) using the same id."""
    place = place_of(call)
    if checkpoint.known is None or place is None or ROOT not in place.checkpoints:
        return True
    return place.checkpoints[ROOT] in checkpoint.known


def _has_effects(call: Step, top: dict[str, str], steps: list[Step]) -> bool:
    """True if the call, or a step nested in it, has an effect left to undo."""
    return any(top[s.id] == call.id and needs_undo(s) for s in steps)


class RewindOptions(TypedDict, total=False):
    """The keywords of `rewind` that front doors pass on (`**options`)."""

    journal: Journal | str | None
    dry_run: bool
    force: bool
    on_irreversible: OnIrreversible
    retry: RetryPolicy | None
    live: bool


class RewindReport(RollbackReport):
    """What a rewind undid (newest first), across the runs of one thread.

    `run_id` is the thread's id here; `runs` the runs it undid steps of, `calls` the tool
    calls those steps belong to, `config` the config to resume the conversation from
    (LangGraph: `graph.invoke(None, report.config)`), `notes` what else a person should know.
    `complete` is True only when every step after the checkpoint is undone (or, with
    `on_irreversible="skip"`, reported irreversible).
    """

    checkpoint_id: str
    checkpoint_ns: str = ""
    runs: list[str] = Field(default_factory=list)
    calls: list[str] = Field(default_factory=list)
    config: JSONDict = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @property
    def blocked(self) -> list[StepOutcome]:
        """The steps that stop (or stopped) the rewind: irreversible, pending, in conflict."""
        return [o for o in self.outcomes if o.outcome in _BLOCKING]


def rewind(
    checkpoint: Checkpoint,
    *,
    journal: Journal | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_irreversible: OnIrreversible = "stop",
    retry: RetryPolicy | None = None,
    live: bool = False,
) -> RewindReport:
    """Undo, newest first, every effect of the thread's tool calls made after `checkpoint`.

    - `dry_run`: say what would be undone, and what would stop it; change nothing.
    - `force`: undo even where someone changed the same thing since (no conflict check).
    - `on_irreversible`: `"stop"` (before anything is undone) when a step has no undo, or
      `"skip"` past such steps (reported as irreversible).
    - `retry`: how often a compensation failing transiently is tried.
    - `live`: rewind runs still active while their agent may be running (closing them).

    Every step is checked first: a step with no undo, one left pending, a run still being run
    and a conflict each stop the rewind before anything is undone.

    Raises: RollbackFailed (its `report` a RewindReport) when the checks stop it (nothing
    undone) or an undo fails on the way (the steps after it stay undone: run it again to
    resume). InvalidArgument for a checkpoint whose time cannot be told.
    """
    store = get_journal(journal)
    checkpoint.time  # noqa: B018 - InvalidArgument before anything else
    todo, calls, others = _plan(checkpoint, store)
    report = _report(checkpoint, todo, calls, others, dry_run)
    if dry_run:
        report.outcomes = _checks(store, todo, force, live)
        report.complete = not _stops(report.outcomes, on_irreversible)
        return report
    _settle_abandoned(store, todo)
    todo, calls, others = _plan(checkpoint, store)
    _refuse_if_stopped(report, _checks(store, todo, force, live), on_irreversible)
    closed = {run_id: store.close_run(run_id).status for run_id in _runs(todo)}
    again, calls, others = _plan(checkpoint, store)  # journaled before the runs closed
    if {s.id for s in again} != {s.id for s in todo}:
        try:
            _refuse_if_stopped(report, _checks(store, again, force, True), on_irreversible)
        except RollbackFailed:
            for run_id, status in closed.items():  # nothing was undone: as they were
                store.set_run_status(run_id, status)
            raise
        todo = again
    report = _report(checkpoint, todo, calls, others, dry_run)
    try:
        for step in todo:
            _undo(store, step, report, force, on_irreversible, retry)
    finally:
        for run_id in closed:
            settle_run_status(store, run_id)
    report.complete = True
    return report


def _report(
    checkpoint: Checkpoint, todo: list[Step], calls: list[str], others: list[str], dry_run: bool
) -> RewindReport:
    notes = []
    if others:
        notes.append(
            f"{len(others)} tool call(s) of thread {checkpoint.thread_id} made since ran after "
            f"checkpoints this graph's checkpointer does not hold (another graph using the "
            f"same thread id): left alone: {', '.join(others)}"
        )
    return RewindReport(
        notes=notes,
        run_id=checkpoint.thread_id,
        checkpoint_id=checkpoint.checkpoint_id,
        checkpoint_ns=checkpoint.checkpoint_ns,
        dry_run=dry_run,
        runs=_runs(todo),
        calls=calls,
        config=checkpoint.config,
    )


def _runs(steps: Iterable[Step]) -> list[str]:
    return list(dict.fromkeys(s.run_id for s in steps))


def _calls(steps: list[Step]) -> dict[str, str]:
    """Each step's tool call (its top-level step in its run)."""
    top: dict[str, str] = {}
    for run_id in _runs(steps):
        top.update(top_level([s for s in steps if s.run_id == run_id]))
    return top


def _settle_abandoned(journal: Journal, todo: list[Step]) -> None:
    """Resolve steps left pending or compensating by a process that is provably gone, as a
    rollback does when it reaches them (a journal matter: nothing in the world changes)."""
    for step in todo:
        unsettled = step.status in (StepStatus.PENDING, StepStatus.COMPENSATING)
        if unsettled and liveness(step.owner).liveness is Liveness.DEAD:
            settle(journal, step)


def _checks(journal: Journal, todo: list[Step], force: bool, live: bool) -> list[StepOutcome]:
    """What undoing each step would do, as a dry-run rollback says it, with the conflicts the
    compensation kinds foresee and the runs whose agent may still be running."""
    running = {} if live else {r: agent_running(journal, r) for r in _runs(todo)}
    conflicts = {} if force else foresee_conflicts(todo)
    outcomes = []
    for step in todo:
        why = running.get(step.run_id)
        if why is not None:
            detail = (
                f"its run {step.run_id} is still active and its agent may be running ({why}); "
                f"pass live=True to close the run and rewind it"
            )
            outcomes.append(
                StepOutcome(step_id=step.id, tool=step.tool, outcome="busy", detail=detail)
            )
        elif step.id in conflicts:
            outcomes.append(
                StepOutcome(
                    step_id=step.id,
                    tool=step.tool,
                    outcome="conflict",
                    detail=f"conflict: {conflicts[step.id]} (force=True overrides)",
                )
            )
        else:
            outcomes.append(_dry_run(journal, step))
    return outcomes


def _dry_run(journal: Journal, step: Step) -> StepOutcome:
    try:
        (outcome,) = undo_step(step.id, journal=journal, dry_run=True).outcomes
    except GoexError as exc:  # an unknown compensation kind, or undone meanwhile
        return StepOutcome(step_id=step.id, tool=step.tool, outcome="failed", detail=str(exc))
    return outcome


def _stops(outcomes: list[StepOutcome], on_irreversible: OnIrreversible) -> list[StepOutcome]:
    stopping = set(_BLOCKING) - ({"irreversible"} if on_irreversible == "skip" else set())
    return [o for o in outcomes if o.outcome in stopping]


def _refuse_if_stopped(
    report: RewindReport, outcomes: list[StepOutcome], on_irreversible: OnIrreversible
) -> None:
    stops = _stops(outcomes, on_irreversible)
    if not stops:
        return
    report.outcomes = outcomes
    named = "; ".join(f"{o.step_id} ({o.tool}): {o.outcome}: {o.detail}" for o in stops[:5])
    more = f" and {len(stops) - 5} more" if len(stops) > 5 else ""
    raise RollbackFailed(
        f"rewind of thread {report.run_id} to checkpoint {report.checkpoint_id} stopped "
        f"before undoing anything: {len(stops)} step(s) would stop it: {named}{more}",
        report,
    )


def _undo(
    journal: Journal,
    step: Step,
    report: RewindReport,
    force: bool,
    on_irreversible: OnIrreversible,
    retry: RetryPolicy | None,
) -> None:
    if on_irreversible == "skip":
        outcome = _dry_run(journal, step)
        if outcome.outcome == "irreversible":
            report.outcomes.append(outcome)
            return
    try:
        done = undo_step(step.id, journal=journal, force=force, retry=retry, live=True)
    except RollbackFailed as exc:
        report.outcomes += exc.report.outcomes
        raise RollbackFailed(
            f"rewind of thread {report.run_id} stopped at step {step.id} ({step.tool}): {exc}; "
            f"the {len(report.compensated)} step(s) after it are undone. Run it again to resume",
            report,
        ) from None
    except GoexError:
        if needs_undo(journal.get_step(step.id)):
            raise
        return  # another rollback undid it meanwhile
    report.outcomes += done.outcomes


class CheckpointCalls(BaseModel):
    """A point of a thread: a checkpoint that a tool call ran after, or a point a person
    named (`mark`, then `name` is set); how many tool calls were made after it (`calls`),
    those that ran right after a checkpoint (`next_calls`, ids), and how many effects a
    rewind to it would undo now (`to_undo`)."""

    checkpoint_id: str
    checkpoint_ns: str = ""
    created_at: datetime | None = None
    name: str | None = None
    calls: int = 0
    next_calls: list[str] = Field(default_factory=list)
    to_undo: int = 0


def mark(thread_id: str, name: str, *, journal: Journal | str | None = None) -> Checkpoint:
    """Name this moment of a thread, to rewind to it later (`named_point`, then `rewind`):
    for frameworks whose conversations have no checkpoint ids of their own, e.g. a LlamaIndex
    workflow whose `Context` is saved (`ctx.to_dict()`) to be resumed later. The point is
    journaled as an empty run of the thread (metadata `point`), made now."""
    store = get_journal(journal)
    run = store.create_run(
        Run(name=f"point {name!r}", metadata={"thread_id": thread_id, "point": name})
    )
    store.end_run(run.id, RunStatus.COMPLETED)
    return Checkpoint(thread_id=thread_id, checkpoint_id=run.id, created_at=run.started_at)


def named_point(thread_id: str, name: str, *, journal: Journal | str | None = None) -> Checkpoint:
    """The point of the thread named `name` (the latest, if named several times).

    Raises: NotFound if the thread has no point of that name.
    """
    runs = get_journal(journal).find_runs(thread_id=thread_id, point=name)
    if not runs:
        raise NotFound(f"thread {thread_id!r} has no point named {name!r}")
    run = runs[-1]
    return Checkpoint(thread_id=thread_id, checkpoint_id=run.id, created_at=run.started_at)


def thread_checkpoints(
    thread_id: str, *, journal: Journal | str | None = None
) -> list[CheckpointCalls]:
    """The points of a thread the journal knows, newest first, each with the tool calls made
    after it: the checkpoints its tool calls ran after, and the points named with `mark`.

    `made_after` for every point and call, in O(n log n): a call was made after a point if
    it ran after that very checkpoint, or if the latest of its start and of the checkpoints
    it ran after is later than the point (calls sorted by that time, counted by bisection).
    """
    store = get_journal(journal)
    steps = thread_steps(thread_id, journal=store)
    top = _calls(steps)
    calls = [s for s in steps if top[s.id] == s.id]
    effects = Counter(top[s.id] for s in steps if needs_undo(s))
    places = {c.id: place_of(c) for c in calls}
    known: dict[str, tuple[str, datetime, str | None]] = {}
    direct: dict[str, list[Step]] = {}  # checkpoint -> the calls that ran right after it
    for call in calls:
        place = places[call.id]
        for ns, checkpoint_id in (place.checkpoints if place else {}).items():
            made = checkpoint_time(checkpoint_id) or call.created_at - timedelta(microseconds=1)
            if checkpoint_id not in known or made < known[checkpoint_id][1]:
                known[checkpoint_id] = (ns, made, None)
            direct.setdefault(checkpoint_id, []).append(call)
    for run in store.find_runs(thread_id=thread_id):
        if "point" in run.metadata:
            known[run.id] = ("", _aware(run.started_at), str(run.metadata["point"]))
    latest = {c.id: _latest(c, places[c.id]) for c in calls}
    order = sorted(calls, key=lambda c: latest[c.id])
    times = [latest[c.id] for c in order]
    undo_from = [0] * (len(order) + 1)  # effects left to undo in order[i:]
    for i in range(len(order) - 1, -1, -1):
        undo_from[i] = undo_from[i + 1] + effects[order[i].id]
    listed = []
    for checkpoint_id, (ns, made, name) in sorted(
        known.items(), key=lambda kv: kv[1][1], reverse=True
    ):
        later = bisect_right(times, made)
        also = [c for c in direct.get(checkpoint_id, []) if latest[c.id] <= made]
        listed.append(
            CheckpointCalls(
                checkpoint_id=checkpoint_id,
                checkpoint_ns=ns,
                created_at=made,
                name=name,
                calls=len(order) - later + len(also),
                next_calls=[
                    c.id
                    for c in direct.get(checkpoint_id, [])
                    if (place := places[c.id]) is not None
                    and place.checkpoints.get(ns) == checkpoint_id
                ],
                to_undo=undo_from[later] + sum(effects[c.id] for c in also),
            )
        )
    return listed


def _latest(call: Step, place: Place | None) -> datetime:
    """The latest of a call's start and of the checkpoints it ran after (see made_after)."""
    made = [checkpoint_time(c) for c in (place.checkpoints.values() if place else ())]
    return max([call.created_at, *(t for t in made if t is not None)])


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
