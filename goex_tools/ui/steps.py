"""A run's steps as the agent made them, for the page: tool calls numbered 1..N as
`rollback(steps=N)` counts them (the notebook's numbers), each with the effects nested in
it, calls that ran at the same time marked, and each effect with what it changed, the
decision that allowed it and its undo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from goex_tools.journal import Journal
from goex_tools.model import Reversibility, Run, Step, StepStatus
from goex_tools.notebook import call_order, shown_steps, step_numbers
from goex_tools.redaction import redact
from goex_tools.rollback import top_level
from goex_tools.ui.changes import StepChanges, changes_of

__all__ = ["CallView", "StepView", "run_calls"]

INPUTS_SHOWN = 600  # characters of a step's inputs the page shows

_UNDONE_LATER = frozenset(  # statuses a rollback may still take a step from
    {
        StepStatus.APPLIED,
        StepStatus.IRREVERSIBLE,
        StepStatus.PENDING,
        StepStatus.COMPENSATING,
        StepStatus.COMPENSATION_FAILED,
    }
)


@dataclass
class StepView:
    step: Step
    number: str
    depth: int
    changes: StepChanges
    decision: str  # the rule that allowed (or refused) it, and why

    @property
    def label(self) -> str:
        """exact / semantic / none / - (as decided before the step ran)."""
        return self.step.reversibility.undo

    @property
    def undo(self) -> str:
        return str(redact(self.step.undo_summary))

    @property
    def inputs(self) -> str:
        """The tool call's arguments, as JSON (long values cut)."""
        if not self.step.inputs:
            return ""
        text = json.dumps(redact(self.step.inputs), sort_keys=True, default=str)
        return text if len(text) <= INPUTS_SHOWN else text[: INPUTS_SHOWN - 1] + "…"

    @property
    def error(self) -> str:
        return str(redact(self.step.error or ""))

    @property
    def notes(self) -> list[str]:
        return [str(redact(note)) for note in self.step.notes]

    @property
    def can_undo(self) -> bool:
        """A rollback would take this step (its effect is still there, or may be)."""
        return (
            self.step.reversibility not in (Reversibility.NO_EFFECT, Reversibility.CONTAINER)
            and self.step.status in _UNDONE_LATER
        )

    @property
    def held(self) -> bool:
        return self.step.status is StepStatus.HELD


@dataclass
class CallView:
    """One tool call: its top step and the steps shown for it."""

    number: int
    top: Step
    steps: list[StepView] = field(default_factory=list)
    parallel: list[int] = field(default_factory=list)  # calls that ran at the same time


def run_calls(journal: Journal, run_id: str) -> tuple[Run, list[CallView]]:
    """The run and its tool calls in the order they began."""
    run = journal.get_run(run_id)
    steps = journal.steps(run.id)
    by_id = {s.id: s for s in steps}
    top, order = top_level(steps), call_order(steps)
    shown = shown_steps(steps)
    numbers = step_numbers(steps, shown)
    visible = {s.id for s in shown}
    calls: dict[str, CallView] = {}
    for step in steps:
        if top[step.id] not in calls:
            calls[top[step.id]] = CallView(order[step.id], by_id[top[step.id]])
    for step in shown:
        depth, parent = 0, step.parent_id
        while parent is not None and parent in by_id:
            depth += parent in visible
            parent = by_id[parent].parent_id
        calls[top[step.id]].steps.append(
            StepView(step, numbers[step.id], depth, changes_of(step, journal), _decision(step))
        )
    listed = sorted(calls.values(), key=lambda c: c.number)
    for call in listed:  # overlapping in time: the agent made them in parallel
        call.parallel = [
            other.number
            for other in listed
            if other is not call
            and other.top.created_at < call.top.updated_at
            and call.top.created_at < other.top.updated_at
            and _ended(other.top)
            and _ended(call.top)
        ]
    return run, listed


def _ended(step: Step) -> bool:
    return step.status not in (StepStatus.PENDING, StepStatus.HELD)


def _decision(step: Step) -> str:
    d = step.decision
    if d is None:
        return ""
    verdict = "allowed" if d.allowed else "refused"
    by = f", approved by {d.approved_by}" if d.approved_by else ""
    reason = f": {d.reason}" if d.reason else ""
    return str(redact(f"{verdict} by rule {d.rule}{by}{reason}"))
