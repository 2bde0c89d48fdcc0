"""Resolving steps a crash left in between: `pending` (effect maybe done) and `compensating`.

A pending step whose process is gone is resolved by asking its domain (the compensation's
probe) whether the effect happened: yes -> applied, so it can be rolled back; no -> failed.
When the domain cannot tell, the step stays pending and is reported, because the journal
must not guess; a person can then decide with `assume`.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import BaseModel

from goex_tools.errors import GoexError
from goex_tools.journal import Journal, get_journal
from goex_tools.model import Reversibility, Step, StepStatus
from goex_tools.registry import EffectState, registry

Resolution = Literal["applied", "failed", "released", "unknown", "alive"]


class RecoveryOutcome(BaseModel):
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

    `assume` maps step ids to a person's answer for steps the domain cannot probe.
    `include_live=True` also takes steps whose owner looks alive or runs on another host.
    """
    store = get_journal(journal)
    assume = assume or {}
    outcomes = []
    for step in store.steps_with_status(StepStatus.PENDING, StepStatus.COMPENSATING):
        if not include_live and step.id not in assume and _owner_alive(step.owner):
            outcomes.append(_outcome(step, "alive", f"its process {step.owner} is still running"))
        elif step.status is StepStatus.COMPENSATING:
            outcomes.append(_release(store, step))
        else:
            outcomes.append(_resolve(store, step, assume.get(step.id)))
    unknown = set(assume) - {o.step_id for o in outcomes}
    if unknown:
        raise GoexError(f"not pending, cannot assume an outcome for: {', '.join(sorted(unknown))}")
    return outcomes


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


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: we cannot see it, so assume it lives
    if int(pid) == os.getpid():
        return True  # a step of this very process may be in flight on another thread
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(int(pid))


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _outcome(step: Step, resolution: Resolution, detail: str) -> RecoveryOutcome:
    return RecoveryOutcome(
        step_id=step.id, run_id=step.run_id, tool=step.tool, resolution=resolution, detail=detail
    )
