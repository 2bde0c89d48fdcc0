"""Records of the journal: runs, steps, compensations, and the words for their states.

These are plain pydantic models with JSON-serialisable fields, so that a step written by
one process can be read, shown and rolled back by another.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JSONDict = dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class StepStatus(StrEnum):
    """Where a step is in its life.

    pending -> applied (or irreversible) -> compensating -> compensated
    pending -> failed | refused;  compensating -> compensation_failed (resumable)
    held -> applied | discarded   (tentative effects awaiting a person's decision)
    """

    PENDING = "pending"
    HELD = "held"
    APPLIED = "applied"
    IRREVERSIBLE = "irreversible"
    FAILED = "failed"
    REFUSED = "refused"
    DISCARDED = "discarded"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


class Reversibility(StrEnum):
    """What undoing a step means, decided before the step runs."""

    REVERSIBLE = "reversible"  # has a compensation
    IRREVERSIBLE = "irreversible"  # has an effect nobody can undo
    NO_EFFECT = "no_effect"  # read-only: nothing to undo
    CONTAINER = "container"  # groups child steps (an agent run, a chain); undone through them


class RunStatus(StrEnum):
    """Where a run is. Once a rollback of it starts, a run is closed: it takes no new steps.

    active -> completed | failed   (the run's block or framework invocation ended)
    any open status -> rolling_back -> rolled_back | partially_rolled_back   (closed)
    `partially_rolled_back`: a rollback ran (or stopped) and some effects remain.
    """

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    PARTIALLY_ROLLED_BACK = "partially_rolled_back"


CLOSED_RUN_STATUSES = frozenset(
    {RunStatus.ROLLING_BACK, RunStatus.ROLLED_BACK, RunStatus.PARTIALLY_ROLLED_BACK}
)
"""Statuses of a run that accepts no new steps: a rollback of it has started."""


class Compensation(BaseModel):
    """An undo as data: a registered kind plus JSON arguments, runnable by any process."""

    model_config = ConfigDict(frozen=True)

    kind: str
    args: JSONDict = Field(default_factory=dict)
    description: str = ""

    @property
    def unavailable(self) -> str | None:
        """Why this undo turned out impossible while its step ran, or None."""
        reason = self.args.get("unavailable")
        return str(reason) if reason else None

    def made_unavailable(self, reason: str) -> Compensation:
        """This compensation with its arguments replaced by the reason it cannot run: a
        rollback treats the step as one without an undo, and says why."""
        return self.model_copy(update={"args": {"unavailable": reason}})


class Decision(BaseModel):
    """The verdict on a proposed action, and the rule that gave it."""

    allowed: bool
    rule: str = "default"
    reason: str = ""
    approved_by: str | None = None
    compensation: Compensation | None = None
    """An undo the gate found for an action that had none (e.g. LLM-proposed and verified)."""


class Proposal(BaseModel):
    """An action classified before it runs: what it is, and how (or whether) it can be undone.

    Policy and approval hooks decide on a proposal; nothing has happened yet.
    """

    tool: str
    domain: str
    inputs: JSONDict = Field(default_factory=dict)
    reversibility: Reversibility
    compensation: Compensation | None = None
    predicted: JSONDict = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class Step(BaseModel):
    """One action of a run, with its compensation and its history."""

    id: str = Field(default_factory=new_id)
    seq: int | None = None  # global order, assigned by the journal
    run_id: str
    parent_id: str | None = None
    tool: str
    domain: str
    inputs: JSONDict = Field(default_factory=dict)
    output: Any = None
    effect: JSONDict = Field(default_factory=dict)
    compensation: Compensation | None = None
    reversibility: Reversibility = Reversibility.REVERSIBLE
    status: StepStatus = StepStatus.PENDING
    decision: Decision | None = None
    error: str | None = None
    notes: list[str] = Field(default_factory=list)
    owner: str = ""  # the process that executes or compensates it (goex_tools.owner)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def undoable(self) -> bool:
        """True if rollback should run this step's compensation."""
        return self.compensation is not None and self.status in UNDOABLE_STATUSES


UNDOABLE_STATUSES = frozenset({StepStatus.APPLIED, StepStatus.COMPENSATION_FAILED})
"""Statuses from which a rollback may start a step's compensation (compare-and-set)."""


class Run(BaseModel):
    """A unit an agent did and a person may roll back: an agent invocation, a script."""

    id: str = Field(default_factory=new_id)
    name: str = ""
    status: RunStatus = RunStatus.ACTIVE
    metadata: JSONDict = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None


class Event(BaseModel):
    """An append-only record of a step's transition, kept for audit and post-facto review."""

    step_id: str
    at: datetime = Field(default_factory=utcnow)
    status: StepStatus
    detail: str = ""


Outcome = Literal[
    "compensated", "would_compensate", "irreversible", "failed", "conflict", "pending", "busy"
]


class StepOutcome(BaseModel):
    """What a rollback did with one step.

    `compensated` / `would_compensate` (dry run); `irreversible`: no undo exists; `failed` /
    `conflict`: the undo failed or would overwrite a later change; `pending`: the step's
    effect may or may not have happened (a crash, or still running); `busy`: another
    rollback is compensating it.
    """

    step_id: str
    tool: str
    outcome: Outcome
    detail: str = ""


class RollbackReport(BaseModel):
    """What a rollback undid, in the order it went (newest step first).

    `complete` is True only when every step it was asked to undo is undone (or, with
    `on_irreversible="skip"`, reported irreversible).
    """

    run_id: str
    dry_run: bool = False
    outcomes: list[StepOutcome] = Field(default_factory=list)
    complete: bool = False

    @property
    def compensated(self) -> list[str]:
        """Ids of the steps this rollback compensated."""
        return [o.step_id for o in self.outcomes if o.outcome == "compensated"]
