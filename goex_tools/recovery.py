"""Resolving steps a crash left in between: `pending` (effect maybe done) and `compensating`.

A pending step whose process is gone is resolved by asking its domain (the compensation's
probe) whether the effect happened: yes -> applied, so it can be rolled back; no -> failed.
When the domain cannot tell, the step stays pending and is reported, because the journal
must not guess; a person can then decide with `assume`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from goex_tools.errors import InvalidArgument, StaleTransition
from goex_tools.journal import Journal, get_journal
from goex_tools.model import Reversibility, Step, StepStatus
from goex_tools.owner import Liveness, liveness
from goex_tools.registry import EffectState, registry

__all__ = ["RecoveryOutcome", "Resolution", "recover", "settle"]

Resolution = Literal["applied", "failed", "released", "unknown", "alive"]


class RecoveryOutcome(BaseModel):
    """What recovery did with one step: `applied` / `failed` (resolved), `released` (a dead
    rollback's step, resumable), `unknown` (nobody can tell yet: said why), `alive` (left to
    its running process)."""

    step_id: str
    run_id: str
    tool: str
    resolution: Resolution
    detail: str = ""


def recover(
    journal: Journal | str | None = None,
    *,
    assume: dict[str, Literal["applied", "failed"]] | None = None,
    include_live: bool = False,
) -> list[RecoveryOutcome]:
    """Resolve every pending or compensating step whose owning process is gone.

    - `assume`: step id -> a person's answer, for steps the domain cannot probe.
    - `include_live`: also take steps whose process runs, or cannot be proven gone (another
      machine, another container); only when you know it is gone.

    Raises: NotFound for an assumed step the journal does not hold, InvalidArgument for one
    that is not pending (both before anything is changed).
    """
    store = get_journal(journal)
    assume = assume or {}
    _check_assumptions(store, assume)
    outcomes = []
    for step in store.steps_with_status(StepStatus.PENDING, StepStatus.COMPENSATING):
        verdict = liveness(step.owner)
        taken = include_live or step.id in assume or verdict.liveness is Liveness.DEAD
        if not taken and verdict.liveness is Liveness.ALIVE:
            outcomes.append(_outcome(step, "alive", f"its process {verdict.reason}"))
        elif not taken:
            detail = (
                f"cannot tell whether its process is gone: {verdict.reason}. If it is, "
                f"`goex recover --all` resolves it"
            )
            outcomes.append(_outcome(step, "unknown", detail))
        else:
            outcomes.append(settle(store, step, assume.get(step.id)))
    return outcomes


def settle(
    journal: Journal, step: Step, assumed: Literal["applied", "failed"] | None = None
) -> RecoveryOutcome:
    """Resolve one pending or compensating step whose process is gone (the caller knows)."""
    try:
        if step.status is StepStatus.COMPENSATING:
            return _release(journal, step)
        return _resolve(journal, step, assumed)
    except StaleTransition:  # another process resolved it first
        now = journal.get_step(step.id)
        moved = f"meanwhile resolved elsewhere: it is {now.status.value}"
        if now.status in (StepStatus.APPLIED, StepStatus.IRREVERSIBLE):
            return _outcome(step, "applied", moved)
        if now.status is StepStatus.FAILED:
            return _outcome(step, "failed", moved)
        return _outcome(step, "unknown", moved)


def _check_assumptions(journal: Journal, assume: dict[str, Literal["applied", "failed"]]) -> None:
    for step_id, answer in assume.items():
        if answer not in ("applied", "failed"):
            raise InvalidArgument(f"assume {step_id}={answer!r}: the answer is applied or failed")
        step = journal.get_step(step_id)  # NotFound
        if step.status is not StepStatus.PENDING:
            raise InvalidArgument(
                f"step {step_id} ({step.tool}) is {step.status.value}, not pending: there is "
                f"no outcome to assume"
            )


def _resolve(
    journal: Journal, step: Step, assumed: Literal["applied", "failed"] | None
) -> RecoveryOutcome:
    state, how = _probe(step)
    if assumed is not None:
        state = EffectState.HAPPENED if assumed == "applied" else EffectState.NOT_HAPPENED
        how = "as a person stated"
    if state is EffectState.HAPPENED:
        status = (
            StepStatus.IRREVERSIBLE
            if step.reversibility is Reversibility.IRREVERSIBLE
            else StepStatus.APPLIED
        )
        detail = f"recovered: the effect happened ({how})"
        journal.transition(step.id, status, expect=[StepStatus.PENDING], detail=detail)
        return _outcome(step, "applied", detail)
    if state is EffectState.NOT_HAPPENED:
        detail = f"recovered: the effect did not happen ({how})"
        journal.transition(step.id, StepStatus.FAILED, expect=[StepStatus.PENDING], error=detail)
        return _outcome(step, "failed", detail)
    return _outcome(
        step, "unknown", f"{how}; decide with `goex recover --assume {step.id}=applied|failed`"
    )


def _release(journal: Journal, step: Step) -> RecoveryOutcome:
    detail = f"recovered: the rollback process {step.owner} died while compensating; resumable"
    journal.transition(
        step.id,
        StepStatus.COMPENSATION_FAILED,
        expect=[StepStatus.COMPENSATING],
        error=detail,
    )
    return _outcome(step, "released", detail)


def _probe(step: Step) -> tuple[EffectState, str]:
    if step.compensation is None:
        return EffectState.UNKNOWN, "no compensation to probe with"
    handler = registry.get(step.compensation.kind)
    if handler.probe is None:
        return EffectState.UNKNOWN, f"{step.compensation.kind} cannot tell whether it happened"
    try:
        return handler.probe(step), f"probed by {step.compensation.kind}"
    except Exception as exc:
        return EffectState.UNKNOWN, f"probe failed: {type(exc).__name__}: {exc}"


def _outcome(step: Step, resolution: Resolution, detail: str) -> RecoveryOutcome:
    return RecoveryOutcome(
        step_id=step.id, run_id=step.run_id, tool=step.tool, resolution=resolution, detail=detail
    )
