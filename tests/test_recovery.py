"""Crashes between the effect and the `applied` mark, resolved by `goex recover`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from tests.support.processes import goex_cli, kill_when_ready, python

AGENT = """
import sys
import goex_tools as goex
from tests.support import fileops
journal = goex.Journal(sys.argv[1])
with goex.run("doomed", journal=journal):
    fileops.create_file(sys.argv[3] + ".ok", "fine")
    getattr(fileops, sys.argv[2])(sys.argv[3], sys.argv[4])
"""


def crash(journal_url: str, action: str, target: Path) -> None:
    """Run an agent process and SIGKILL it inside `action`'s effect."""
    ready = target.with_suffix(".ready")
    kill_when_ready(python(AGENT, journal_url, action, str(target), str(ready)), ready)


def test_killed_after_the_effect_recovers_as_applied_and_can_be_rolled_back(
    journal_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "made.txt"
    crash(journal_url, "create_then_hang", target)
    journal = Journal(journal_url)
    [run] = journal.list_runs()
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.APPLIED, StepStatus.PENDING]
    assert target.exists()

    result = goex_cli("recover", journal_url=journal_url)
    assert result.returncode == 0, result.stderr
    [outcome] = json.loads(result.stdout)
    assert outcome["resolution"] == "applied"
    assert journal.steps(run.id)[1].status is StepStatus.APPLIED

    assert goex_cli("rollback", run.id, journal_url=journal_url).returncode == 0
    assert not target.exists() and not target.with_suffix(".txt.ok").exists()


def test_killed_before_the_effect_recovers_as_failed(journal_url: str, tmp_path: Path) -> None:
    target = tmp_path / "never.txt"
    crash(journal_url, "hang_then_create", target)
    [outcome] = goex.recover(journal_url)
    assert outcome.resolution == "failed"
    journal = Journal(journal_url)
    step = journal.get_step(outcome.step_id)
    assert step.status is StepStatus.FAILED and "did not happen" in (step.error or "")
    assert [s.tool for s in goex.plan(journal, step.run_id)] == ["create_file"]


def test_unprobeable_steps_stay_pending_until_a_person_decides(
    journal_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "unknown.txt"
    crash(journal_url, "create_then_hang_unprobed", target)
    result = goex_cli("recover", journal_url=journal_url)
    assert result.returncode == 1  # unresolved
    [outcome] = json.loads(result.stdout)
    assert outcome["resolution"] == "unknown"
    journal = Journal(journal_url)
    assert journal.get_step(outcome["step_id"]).status is StepStatus.PENDING

    result = goex_cli(
        "recover", "--assume", f"{outcome['step_id']}=applied", journal_url=journal_url
    )
    assert result.returncode == 0, result.stdout
    assert journal.get_step(outcome["step_id"]).status is StepStatus.APPLIED
    goex.rollback(outcome["run_id"], journal=journal)
    assert not target.exists()


def test_steps_of_a_live_process_are_left_alone(journal_url: str, tmp_path: Path) -> None:
    journal = Journal(journal_url)
    with goex.run("live", journal=journal) as run:
        handle = run.begin(
            goex.Proposal(tool="slow", domain="test", reversibility=goex.Reversibility.NO_EFFECT)
        )
        [outcome] = goex.recover(journal)
        assert outcome.resolution == "alive"
        handle.finish("done")
    assert journal.get_step(handle.id).status is StepStatus.APPLIED


def test_assuming_an_outcome_for_an_unknown_step_is_refused(journal_url: str) -> None:
    with pytest.raises(goex.NotFound, match="no step with id 'nope'"):
        goex.recover(journal_url, assume={"nope": "applied"})
