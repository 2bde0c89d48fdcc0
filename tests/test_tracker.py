"""RunTracker: framework runs onto goex runs and steps, pauses, unreported ends, and two
handlers reporting the same run to one journal."""

from __future__ import annotations

from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.runtime import register_pause
from goex_tools.tracker import HandlerConflict, RunTracker, ToolKind
from tests.support.fileops import create_file


class Paused(Exception):
    """A framework's way to suspend a call it replays on resume."""


register_pause(Paused)


def call(tracker: RunTracker, key: str, work: Path | None = None, *, pause: bool = False) -> None:
    """One tool call of the invocation "agent": optionally an effect, optionally a pause."""
    tracker.start(key, "agent", name="tool", tool=ToolKind.JOURNALED)
    try:
        with tracker.scope(key):
            if work is not None:
                create_file(str(work / f"{key}.txt"), key)
            if pause:
                raise Paused("waiting for a person")
    except Paused as exc:
        tracker.end(key, error=exc)
    else:
        tracker.end(key, "ok")


def test_tracker_withdraws_a_paused_call_that_did_nothing(journal: Journal) -> None:
    tracker = RunTracker(journal=journal, framework="test")
    tracker.start("agent", None, name="agent")
    call(tracker, "asked", pause=True)
    tracker.end("agent")
    assert journal.steps("agent") == []
    assert journal.steps_with_status(StepStatus.PENDING) == []


def test_tracker_keeps_a_paused_call_whose_effects_happened(
    journal: Journal, tmp_path: Path
) -> None:
    tracker = RunTracker(journal=journal, framework="test")
    tracker.start("agent", None, name="agent")
    call(tracker, "drafted", tmp_path, pause=True)
    tracker.end("agent")
    container, effect = journal.steps("agent")
    assert (container.status, effect.status) == (StepStatus.APPLIED, StepStatus.APPLIED)
    assert "paused by Paused" in container.notes[-1]
    goex.rollback("agent", journal=journal)
    assert not (tmp_path / "drafted.txt").exists()


def test_journal_withdraws_only_a_pending_step_without_children(
    journal: Journal, tmp_path: Path
) -> None:
    tracker = RunTracker(journal=journal, framework="test")
    tracker.start("agent", None, name="agent")
    call(tracker, "done", tmp_path)
    tracker.end("agent")
    container, effect = journal.steps("agent")
    assert not journal.withdraw(container.id)  # it has a child
    assert not journal.withdraw(effect.id)  # applied
    assert [s.id for s in journal.steps("agent")] == [container.id, effect.id]


def test_tracker_fails_calls_the_framework_never_reported_at_the_end(journal: Journal) -> None:
    tracker = RunTracker(journal=journal, framework="test")
    tracker.start("agent", None, name="agent")
    tracker.start("lost", "agent", name="tool", tool=ToolKind.JOURNALED)
    tracker.end("agent")
    (step,) = journal.steps("agent")
    assert step.status is StepStatus.FAILED
    assert "ended before this call reported its end" in (step.error or "")
    assert not tracker.busy


def test_tracker_second_on_a_journal_follows_the_first(journal: Journal, tmp_path: Path) -> None:
    """The same run reported twice (a handler given twice, a notebook cell run twice): one
    step per call, every effect under it, and both trackers know the run."""
    first, second = (RunTracker(journal=journal, framework="test") for _ in range(2))
    for tracker in (first, second):
        tracker.start("agent", None, name="agent")
    for tracker in (first, second):
        tracker.start("call", "agent", name="tool", tool=ToolKind.JOURNALED)
    with second.scope("call"):
        create_file(str(tmp_path / "a.txt"), "a")
    for tracker in (first, second):
        tracker.end("call", "ok")
    for tracker in (first, second):
        tracker.end("agent")
    container, effect = journal.steps("agent")
    assert (container.id, effect.parent_id) == ("call", "call")
    assert {container.status, effect.status} == {StepStatus.APPLIED}
    assert first.run_ids == second.run_ids == ["agent"]
    assert not first.busy and not second.busy


class Allow:
    def decide(self, proposal: goex.Proposal, run: goex.RunContext) -> goex.Decision:
        return goex.Decision(allowed=True)


def test_tracker_refuses_a_second_with_another_gate_on_one_journal(journal: Journal) -> None:
    first = RunTracker(journal=journal, framework="test")
    second = RunTracker(journal=journal, framework="test", gate=Allow())
    first.start("agent", None, name="agent")
    first.start("call", "agent", name="tool", tool=ToolKind.OPAQUE)
    with pytest.raises(HandlerConflict, match="different gates"):
        second.start("call", "agent", name="tool", tool=ToolKind.OPAQUE)
    (step,) = journal.steps("agent")
    assert step.status is StepStatus.FAILED and "different gates" in (step.error or "")
