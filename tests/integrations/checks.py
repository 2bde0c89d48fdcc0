"""Checks both framework tests make on a journaled agent run."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import goex_tools as goex
from goex_tools import Journal, Reversibility, RunStatus, StepStatus
from tests.integrations.conftest import manifest

Manifest = dict[str, tuple[str, int, int, str]]


def transitions(journal: Journal, step_id: str) -> list[str]:
    return [e.status.value for e in journal.events(step_id)]


def assert_tool_calls(
    journal: Journal,
    run_id: str,
    calls: list[tuple[str, Reversibility, dict[str, Any]]],
    leaves: list[str],
) -> None:
    """The run's top-level steps are exactly `calls` (tool, reversibility, inputs), all
    applied; each container has one applied child step, named in order by `leaves`."""
    steps = journal.steps(run_id)
    top = [s for s in steps if s.parent_id is None]
    assert [(s.tool, s.reversibility, s.inputs) for s in top] == calls
    assert {s.status for s in steps} == {StepStatus.APPLIED}
    containers = [s.id for s in top if s.reversibility is Reversibility.CONTAINER]
    children = [(s.tool, s.parent_id) for s in steps if s.parent_id]
    assert children == list(zip(leaves, containers, strict=True))


def assert_compensated_once(journal: Journal, run_id: str) -> None:
    """Every effect of the run was compensated exactly once; no container or read ever was."""
    for step in journal.steps(run_id):
        expected = ["pending", "applied"]
        if step.reversibility is Reversibility.REVERSIBLE:
            expected += ["compensating", "compensated"]
        assert transitions(journal, step.id) == expected, step


def assert_runs_kept_apart(journal: Journal, run_ids: list[str]) -> None:
    """Concurrent invocations, each of two calls on files named after it ("a-1.txt"...):
    every effect lies under the call asked to write its file, in that invocation's run."""
    assert len(run_ids) == 2
    for run_id in run_ids:
        steps = journal.steps(run_id)
        calls = {s.id: s for s in steps if s.parent_id is None}
        effects = [s for s in steps if s.parent_id is not None]
        assert len(calls) == 2 and len(effects) == 2
        for effect in effects:
            assert effect.parent_id is not None
            assert effect.inputs["path"] == calls[effect.parent_id].inputs["path"]
        assert len({Path(s.inputs["path"]).name[0] for s in steps}) == 1


def assert_undo_last_then_rest(
    journal: Journal, run_id: str | UUID, root: Path, before: Manifest, last: str
) -> None:
    """Rolling back the last step restores only `last` (a file the last call changed), then
    rolling back the rest restores everything, each effect compensated once."""
    after = manifest(root)
    goex.rollback(run_id, steps=1, journal=journal)
    assert manifest(root) == {**after, last: before[last]}
    assert journal.get_run(str(run_id)).status is RunStatus.PARTIALLY_ROLLED_BACK
    goex.rollback(run_id, journal=journal)
    assert manifest(root) == before
    assert journal.get_run(str(run_id)).status is RunStatus.ROLLED_BACK
    assert_compensated_once(journal, str(run_id))
