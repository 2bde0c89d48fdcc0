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

__all__ = [
    "CLOSED_RUN_STATUSES",
    "UNDOABLE_STATUSES",
    "Compensation",
    "Decision",
    "Event",
    "JSONDict",
    "Outcome",
    "Proposal",
    "Reversibility",
    "RollbackReport",
    "Run",
    "RunStatus",
    "Step",
    "StepOutcome",
    "StepStatus",
    "new_id",
    "utcnow",
    "weaker",
]

JSONDict = dict[str, Any]


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (every journaled time is one)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new run or step id: 32 hex digits, unique across processes and machines."""
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
    """What undoing a step means: the label, decided and journaled before the step runs and
    never raised after it (a step's journaled label does not change).

    - `exact`: its compensation brings the prior state back (delete what was created,
      write back the representation read before);
    - `semantic`: its compensation does the closest thing the service allows (close an
      issue that cannot be deleted, restore the files of a command whose network calls stay
      made); also every undo goex cannot vouch for (one an LLM proposed);
    - `irreversible`: no compensation (an effect nobody can undo, or effects unknown);
    - `no_effect` (a read) and `container` (a tool call undone through its child steps).

    Where goex cannot prove a step's effects, the label is the weaker one. `REVERSIBLE` is
    the name `EXACT` had before undos could be semantic; journals holding `"reversible"`
    read as `exact`.
    """

    EXACT = "exact"
    SEMANTIC = "semantic"
    IRREVERSIBLE = "irreversible"
    NO_EFFECT = "no_effect"
    CONTAINER = "container"
    REVERSIBLE = "exact"  # alias of EXACT

    @classmethod
    def _missing_(cls, value: object) -> Reversibility | None:
        return cls.EXACT if value == "reversible" else None

    @property
    def has_undo(self) -> bool:
        """True for a step with a compensation: `exact` or `semantic`."""
        return self in (Reversibility.EXACT, Reversibility.SEMANTIC)

    @property
    def undo(self) -> str:
        """The label as shown to people: `exact`, `semantic`, `none` (irreversible), `-`."""
        if self.has_undo:
            return self.value
        return "none" if self is Reversibility.IRREVERSIBLE else "-"


def weaker(first: Reversibility, second: Reversibility) -> Reversibility:
    """The weaker of two labels of one effect: exact > semantic > irreversible."""
    order = [Reversibility.EXACT, Reversibility.SEMANTIC, Reversibility.IRREVERSIBLE]
    if first not in order or second not in order:
        return first
    return max(first, second, key=order.index)


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
    reversibility: Reversibility = Reversibility.EXACT
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

    @property
    def undo_summary(self) -> str:
        """The undo as `goex show` and the notebook show it: `exact: <what it does>`,
        `semantic: <what it does>`, `none: <why>` (irreversible), or `-` (nothing to undo)."""
        undo = self.compensation
        if undo is not None and undo.unavailable:
            return f"none: {undo.description or undo.unavailable}"
        if undo is not None:
            label = self.reversibility.undo if self.reversibility.has_undo else "semantic"
            return f"{label}: {undo.description or undo.kind}"
        if self.reversibility is Reversibility.IRREVERSIBLE:
            return "none: cannot be undone"
        return "-"


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
    rollback is compensating it. `undo`: the step's label, `exact` (the prior state is back)
    or `semantic` (only the closest thing the service allows); None without an undo.
    """

    step_id: str
    tool: str
    outcome: Outcome
    detail: str = ""
    undo: Literal["exact", "semantic"] | None = None


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

    @property
    def restored_exactly(self) -> list[str]:
        """Ids of the compensated steps whose prior state is back."""
        return [
            o.step_id for o in self.outcomes if o.outcome == "compensated" and o.undo == "exact"
        ]

    @property
    def restored_semantically(self) -> list[str]:
        """Ids of the compensated steps whose undo only did the closest thing (`semantic`)."""
        return [
            o.step_id for o in self.outcomes if o.outcome == "compensated" and o.undo == "semantic"
        ]
