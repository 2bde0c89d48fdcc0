"""Rolling back: choosing the steps to undo, and running their compensations newest first.

A rollback either restores the world or says exactly why it stopped: a conflict (someone
changed the same thing since), a compensation that kept failing after retries, or an
irreversible step. What was undone stays recorded, so running the same rollback again
resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from uuid import UUID

from pydantic import BaseModel
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from goex_tools.errors import (
    CompensationConflict,
    GoexError,
    InvalidArgument,
    NotFound,
    RollbackFailed,
    StaleTransition,
    TransientError,
)
from goex_tools.journal import Journal, Move, get_journal
from goex_tools.model import (
    UNDOABLE_STATUSES,
    Reversibility,
    RollbackReport,
    RunStatus,
    Step,
    StepOutcome,
    StepStatus,
)
from goex_tools.owner import Liveness, liveness, owner_tag
from goex_tools.recovery import settle
from goex_tools.redaction import redact
from goex_tools.registry import UndoContext, registry

__all__ = [
    "OnIrreversible",
    "RetryPolicy",
    "RollbackReport",
    "StepOutcome",
    "agent_running",
    "close_for_rollback",
    "foresee_conflicts",
    "needs_undo",
    "plan",
    "rollback",
    "settle_run_status",
    "top_level",
    "undo_step",
]

OnIrreversible = Literal["stop", "skip"]


class RetryPolicy(BaseModel):
    """How often a compensation that fails transiently is tried, and how long between tries."""

    attempts: int = 4
    initial_wait: float = 0.2
    max_wait: float = 5.0
    max_retry_after: float = 60.0  # the longest wait a failure may ask for (Retry-After)


def plan(
    journal: Journal,
    run_id: str,
    *,
    steps: int | None = None,
    to: str | None = None,
) -> list[Step]:
    """The steps a rollback would undo, newest first.

    Effectful steps not yet compensated. `steps=N` keeps those of the newest N tool calls
    that have something left to undo: a tool call is a top-level step with every step nested
    in it (a goex tool that ran a sub-agent is one call). `to=STEP` keeps the steps journaled
    after STEP. Container steps (tool calls, agent runs) are undone through their children and
    do not appear; `undo_step` undoes a single effect.
    """
    if steps is not None and to is not None:
        raise InvalidArgument("give steps=N or to=STEP, not both")
    if steps is not None and steps < 1:
        raise InvalidArgument("steps must be a positive number")
    journal.get_run(run_id)  # NotFound for an unknown run
    all_steps = journal.steps(run_id)
    candidates = [s for s in all_steps if needs_undo(s)]
    if to is not None:
        anchor = next((s for s in all_steps if s.id == to), None)
        if anchor is None:
            raise NotFound(f"run {run_id} has no step {to!r}")
        candidates = [s for s in candidates if (s.seq or 0) > (anchor.seq or 0)]
    candidates.reverse()
    if steps is None:
        return candidates
    top = top_level(all_steps)
    seq = {s.id: s.seq or 0 for s in all_steps}
    calls = sorted({top[s.id] for s in candidates}, key=lambda c: -seq[c])  # newest first
    kept = set(calls[:steps])
    return [s for s in candidates if top[s.id] in kept]


def foresee_conflicts(todo: list[Step]) -> dict[str, str]:
    """The conflict each step's undo would meet, by step id, as its compensation kind's
    `preview` foresees it, the steps undone in this order (newest first); a kind that cannot
    read the world now says so as a conflict, and a kind without a preview says nothing."""
    kinds: dict[str, list[Step]] = {}
    for step in todo:
        if step.undoable and step.compensation is not None:
            kinds.setdefault(step.compensation.kind, []).append(step)
    found: dict[str, str] = {}
    for kind, steps in kinds.items():
        try:
            preview = registry.get(kind).preview
        except GoexError:
            continue  # the dry run reports the unknown kind
        if preview is None:
            continue
        try:
            found.update(preview(steps))
        except Exception as exc:
            reason = f"could not be checked before undoing ({type(exc).__name__}: {exc})"
            found.update({s.id: reason for s in steps})
    return found


def top_level(steps: list[Step]) -> dict[str, str]:
    """Each step's top-level ancestor in its run (itself when it has no parent there): the
    tool call it belongs to, as `steps=N` counts them."""
    parent = {s.id: s.parent_id for s in steps}
    top: dict[str, str] = {}
    for step in steps:
        node, seen = step.id, {step.id}
        up = parent[node]
        while up is not None and up in parent and up not in seen:  # stays inside the run
            node = up
            seen.add(node)
            up = parent[node]
        top[step.id] = node
    return top


def rollback(
    run_id: str | UUID,
    *,
    steps: int | None = None,
    to: str | None = None,
    journal: Journal | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_irreversible: OnIrreversible = "stop",
    retry: RetryPolicy | None = None,
    live: bool = False,
) -> RollbackReport:
    """Undo a run, its last `steps` tool calls (each with everything nested in it), or
    everything after step `to`; `undo_step` undoes a single effect.

    - `steps`: undo only the newest N tool calls; `to`: undo every step after this one.
    - `dry_run`: say what would be undone; change nothing.
    - `force`: undo even where someone changed the same thing since (conflicts).
    - `on_irreversible`: `"stop"` at a step with no undo, or `"skip"` past it.
    - `retry`: how often a compensation failing transiently is tried.
    - `live`: roll back a run that is still active while its agent may be running. Without
      it such a run is refused. Either way the run is closed first: it accepts no new steps
      (the agent's next tool call is refused with RunClosed).

    A step still `pending` (its effect may or may not have happened) is resolved on the spot
    when its process is provably gone and its domain can tell; otherwise the rollback stops
    there and says so (`goex recover`, `--assume`).

    Raises: RollbackFailed (carrying the report) when it stops early; the undone steps stay
    compensated, so calling it again resumes. InvalidArgument, NotFound for bad arguments.
    """
    run_id = str(run_id)  # a framework's run id (a LangChain UUID) names the same run
    store = get_journal(journal)
    _check_arguments(store, run_id, steps, to)
    if not dry_run:
        close_for_rollback(store, run_id, live)
    todo = plan(store, run_id, steps=steps, to=to)
    try:
        return _execute(
            store, run_id, todo, dry_run, force, on_irreversible, retry or RetryPolicy()
        )
    finally:
        if not dry_run:
            settle_run_status(store, run_id)


def undo_step(
    step_id: str,
    *,
    journal: Journal | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    retry: RetryPolicy | None = None,
    live: bool = False,
) -> RollbackReport:
    """Undo one step, wherever it is in its run. Its compensation refuses on conflicts.

    Like `rollback`, it closes the step's run first (`live=True` for a run still active).

    Raises: RollbackFailed when the undo stops; NotFound, GoexError (nothing to undo).
    """
    store = get_journal(journal)
    step = store.get_step(step_id)
    if not needs_undo(step):
        raise GoexError(f"step {step_id} ({step.tool}) is {step.status.value}: nothing to undo")
    if not dry_run:
        close_for_rollback(store, step.run_id, live)
        step = store.get_step(step_id)
    try:
        return _execute(store, step.run_id, [step], dry_run, force, "stop", retry or RetryPolicy())
    finally:
        if not dry_run:
            settle_run_status(store, step.run_id)


def _check_arguments(journal: Journal, run_id: str, steps: int | None, to: str | None) -> None:
    """Refuse bad arguments before the run is closed (plan checks them again, later)."""
    if steps is not None and to is not None:
        raise InvalidArgument("give steps=N or to=STEP, not both")
    if steps is not None and steps < 1:
        raise InvalidArgument("steps must be a positive number")
    journal.get_run(run_id)  # NotFound for an unknown run
    if to is not None:
        try:
            anchor = journal.get_step(to)
        except NotFound:
            anchor = None
        if anchor is None or anchor.run_id != run_id:
            raise NotFound(f"run {run_id} has no step {to!r}")


def close_for_rollback(journal: Journal, run_id: str, live: bool) -> None:
    """Close the run to new steps before reading what to undo; refuse a run whose agent may
    still be running unless `live`."""
    why = None if live else agent_running(journal, run_id)
    if why is not None:
        raise RollbackFailed(
            f"run {run_id} is still active and its agent may be running ({why}); nothing "
            f"was undone. Pass live=True (`goex rollback --live`) to close the run and roll "
            f"it back: its next tool call will then be refused",
            RollbackReport(run_id=run_id),
        )
    journal.close_run(run_id)


def agent_running(journal: Journal, run_id: str) -> str | None:
    """Why the agent of an active run may still be running (a process of its steps is not
    provably gone, or it has no steps to tell by), or None."""
    if journal.get_run(run_id).status is not RunStatus.ACTIVE:
        return None
    owners = journal.step_owners(run_id)
    verdicts = [liveness(owner) for owner in owners]
    running = [v.reason for v in verdicts if v.liveness is not Liveness.DEAD]
    if running:
        return running[0]
    return None if owners else "it has no steps to tell by"


def settle_run_status(journal: Journal, run_id: str) -> None:
    """A closed run's final status: rolled back, or partially (effects remain, or a held
    command may still be kept by a person)."""
    journal.end_rollback(run_id, (*_REMAINING, StepStatus.HELD), _EFFECTLESS)


_EFFECTLESS = (Reversibility.NO_EFFECT, Reversibility.CONTAINER)
_REMAINING = (
    *UNDOABLE_STATUSES,
    StepStatus.IRREVERSIBLE,
    StepStatus.COMPENSATING,
    StepStatus.PENDING,  # its effect may have happened: resolved or reported, never skipped
)


def needs_undo(step: Step) -> bool:
    """True for a step with an effect a rollback must still deal with: applied, irreversible,
    a failed undo, or left in between (pending, compensating)."""
    return step.reversibility not in _EFFECTLESS and step.status in _REMAINING


def _execute(
    journal: Journal,
    run_id: str,
    todo: list[Step],
    dry_run: bool,
    force: bool,
    on_irreversible: OnIrreversible,
    retry: RetryPolicy,
) -> RollbackReport:
    report = RollbackReport(run_id=run_id, dry_run=dry_run)
    undone: Step | None = None  # undone, to be marked compensated with the next claim
    try:
        for planned in todo:
            if planned.status in (StepStatus.PENDING, StepStatus.COMPENSATING):
                _mark_undone(journal, undone)  # settling it writes the journal
                undone = None
            step = planned if dry_run else _settled(journal, planned, report)
            if step is None:
                continue  # it never happened: nothing to undo
            missing = _no_undo(step)
            if missing is not None:
                report.outcomes.append(
                    StepOutcome(
                        step_id=step.id, tool=step.tool, outcome="irreversible", detail=missing
                    )
                )
                if on_irreversible == "stop" and not dry_run:
                    raise RollbackFailed(
                        f"rollback stopped at irreversible step {step.id} ({step.tool}): "
                        f"{missing}; the steps after it are undone. Pass "
                        f"on_irreversible='skip' to go past it.",
                        report,
                    )
                continue
            assert step.compensation is not None
            registry.validate(step.compensation)  # unknown kind / bad args: stop before any effect
            if dry_run and step.status in (StepStatus.PENDING, StepStatus.COMPENSATING):
                report.outcomes.append(_unsettled(step, liveness(step.owner).reason))
                continue
            if dry_run:
                report.outcomes.append(
                    StepOutcome(
                        step_id=step.id,
                        tool=step.tool,
                        outcome="would_compensate",
                        detail=step.compensation.description or step.compensation.kind,
                        undo=_label(step),
                    )
                )
                continue
            marking, undone = undone, None
            outcome = _compensate(journal, step, force, retry, marking)
            report.outcomes.append(outcome)
            if outcome.outcome != "compensated":
                raise RollbackFailed(
                    f"rollback stopped at step {step.id} ({step.tool}): {outcome.detail}", report
                )
            undone = step
    finally:
        _mark_undone(journal, undone)
    report.complete = True
    return report


def _settled(journal: Journal, step: Step, report: RollbackReport) -> Step | None:
    """`step`, with a pending or compensating status resolved first when its process is
    provably gone (None: its effect never happened). Stops the rollback otherwise."""
    if step.status not in (StepStatus.PENDING, StepStatus.COMPENSATING):
        return step
    verdict = liveness(step.owner)
    if verdict.liveness is not Liveness.DEAD:
        report.outcomes.append(_unsettled(step, verdict.reason))
        raise RollbackFailed(
            f"rollback stopped at step {step.id} ({step.tool}): {report.outcomes[-1].detail}",
            report,
        )
    outcome = settle(journal, step)
    if outcome.resolution == "failed":
        return None
    if outcome.resolution == "unknown":
        report.outcomes.append(
            StepOutcome(
                step_id=step.id,
                tool=step.tool,
                outcome="pending",
                detail=f"its effect may or may not have happened ({outcome.detail})",
            )
        )
        raise RollbackFailed(
            f"rollback stopped at step {step.id} ({step.tool}): its process is gone and "
            f"nobody can tell whether its effect happened. Decide with `goex recover --assume "
            f"{step.id}=applied|failed`, then roll back again",
            report,
        )
    return journal.get_step(step.id)


def _unsettled(step: Step, why: str) -> StepOutcome:
    """The outcome for a step left in between that this rollback cannot resolve now."""
    if step.status is StepStatus.COMPENSATING:
        return StepOutcome(
            step_id=step.id,
            tool=step.tool,
            outcome="busy",
            detail=f"is being compensated by another rollback ({step.owner}: {why}); if that "
            f"process is gone, `goex recover` releases it and the rollback can resume",
        )
    return StepOutcome(
        step_id=step.id,
        tool=step.tool,
        outcome="pending",
        detail=f"its effect may or may not have happened: its process {step.owner} may still "
        f"run it ({why}). Once it is gone, `goex recover` resolves it (or "
        f"`--assume {step.id}=applied|failed`); then roll back again",
    )


def _no_undo(step: Step) -> str | None:
    """Why `step` has no undo, or None if it has one. A domain that finds out while the step
    runs that its undo is impossible marks the journaled compensation with `unavailable`
    (a compensation journaled as pending is never removed)."""
    if step.compensation is None:
        return "no compensation exists for this step"
    reason = step.compensation.unavailable
    return f"this step cannot be undone: {reason}" if reason else None


def _compensate(
    journal: Journal, step: Step, force: bool, retry: RetryPolicy, undone: Step | None
) -> StepOutcome:
    """Claim `step` (compensating), run its undo, and say how it went. The undo's success is
    marked later, with the next claim (`undone`: the previous step, marked compensated in
    the same commit as this claim): one journal commit per step, write-ahead kept."""
    assert step.compensation is not None
    claim = Move(
        step.id,
        StepStatus.COMPENSATING,
        tuple(UNDOABLE_STATUSES),
        detail=f"compensating with {step.compensation.kind}",
        owner=owner_tag(),
    )
    *done, claimed = journal.transitions([*_done_moves(undone), claim])
    _check_marked(undone, done)
    if not claimed:  # another rollback took it first
        now = journal.get_step(step.id)
        doing = "is being compensated" if now.status is StepStatus.COMPENSATING else "was undone"
        return StepOutcome(
            step_id=step.id,
            tool=step.tool,
            outcome="busy",
            detail=f"{doing} by another rollback ({now.owner}); run this one again once it "
            f"has finished",
        )
    step = step.model_copy(update={"status": StepStatus.COMPENSATING, "owner": claim.owner})
    assert step.compensation is not None
    handler = registry.get(step.compensation.kind)
    ctx = UndoContext(step=step, journal=journal, force=force)
    attempt = _attempt_logger(journal, step.id)
    try:
        for tries in Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(retry.attempts),
            wait=_wait(retry),
            before_sleep=attempt,
            reraise=False,
        ):
            with tries:
                handler.compensate(step.compensation.args, ctx)
    except CompensationConflict as exc:
        return _failed(journal, step, "conflict", f"conflict: {exc} (force=True overrides)")
    except RetryError as exc:
        last = exc.last_attempt.exception()
        return _failed(
            journal, step, "failed", f"still failing after {retry.attempts} attempts: {last}"
        )
    except Exception as exc:  # a compensation's own error, reported not swallowed
        return _failed(journal, step, "failed", f"{type(exc).__name__}: {exc}")
    return StepOutcome(
        step_id=step.id,
        tool=step.tool,
        outcome="compensated",
        detail=step.compensation.description,
        undo=_label(step),
    )


def _label(step: Step) -> Literal["exact", "semantic"]:
    """How a step's undo restores: as journaled before it ran (a compensation added to a
    step labelled otherwise, e.g. by an old gate, never counts as exact)."""
    return "exact" if step.reversibility is Reversibility.EXACT else "semantic"


def _done_moves(undone: Step | None) -> list[Move]:
    if undone is None:
        return []
    # `goex recover --all` may have released it while the undo ran; the undo is done.
    expect = (StepStatus.COMPENSATING, StepStatus.COMPENSATION_FAILED)
    return [Move(undone.id, StepStatus.COMPENSATED, expect, detail="compensated")]


def _mark_undone(journal: Journal, undone: Step | None) -> None:
    """Mark the step whose undo ran compensated, now (the rollback ends or writes otherwise)."""
    if undone is not None:
        _check_marked(undone, journal.transitions(_done_moves(undone)))


def _check_marked(undone: Step | None, done: list[bool]) -> None:
    if undone is not None and not done[0]:
        raise StaleTransition(
            f"step {undone.id} ({undone.tool}) was undone, but something else moved it "
            f"meanwhile: it could not be marked compensated"
        )


def _failed(
    journal: Journal,
    step: Step,
    outcome: Literal["failed", "conflict"],
    detail: str,
) -> StepOutcome:
    detail = redact(detail)
    journal.transition(
        step.id,
        StepStatus.COMPENSATION_FAILED,
        expect=[StepStatus.COMPENSATING],
        error=detail,
    )
    return StepOutcome(step_id=step.id, tool=step.tool, outcome=outcome, detail=detail)


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Exponential backoff, or longer when the failure asked for a wait (Retry-After)."""
    backoff = wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(error, "retry_after", None) or 0.0
        return max(backoff(state), min(asked, policy.max_retry_after))

    return wait


def _attempt_logger(journal: Journal, step_id: str) -> Callable[..., None]:
    def log(state: object) -> None:
        outcome = getattr(state, "outcome", None)
        error = outcome.exception() if outcome is not None else None
        number = getattr(state, "attempt_number", "?")
        journal.note(step_id, f"attempt {number} failed transiently: {error}; retrying")

    return log
