"""`@reversible` on coroutine functions: the step is journaled around the awaited effect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from tests.support.fileops import create_file_later


def test_a_coroutine_step_stays_pending_until_awaited_then_rolls_back(
    journal: Journal, tmp_path: Path
) -> None:
    target = tmp_path / "later.txt"

    async def agent() -> list[StepStatus]:
        with goex.run("async", journal=journal) as run:
            pending = create_file_later(str(target), "hello")
            assert journal.steps(run.id) == []  # created, not run: nothing journaled
            assert await pending == str(target)
        return [s.status for s in journal.steps(run.id)]

    assert asyncio.run(agent()) == [StepStatus.APPLIED]
    assert target.read_text() == "hello"
    (run,) = journal.list_runs()
    goex.rollback(run.id, journal=journal)
    assert not target.exists()


def test_a_failing_coroutine_is_journaled_failed_and_never_undone(
    journal: Journal, tmp_path: Path
) -> None:
    target = tmp_path / "never.txt"

    async def agent() -> str:
        with goex.run("async", journal=journal) as run, pytest.raises(OSError, match="full"):
            await create_file_later(str(target), fail=True)
        return run.id

    run_id = asyncio.run(agent())
    (step,) = journal.steps(run_id)
    assert step.status is StepStatus.FAILED and "disk full" in (step.error or "")
    report = goex.rollback(run_id, journal=journal)
    assert [o.outcome for o in report.outcomes] == []


def test_outside_a_run_a_coroutine_gets_a_run_of_its_own(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOEX_JOURNAL_URL", journal.url)
    target = tmp_path / "adhoc.txt"
    asyncio.run(create_file_later(str(target), "x"))
    runs = goex.Journal(journal.url).list_runs()
    assert [r.name for r in runs] == ["create_file_later"]
    (step,) = journal.steps(runs[0].id)
    assert step.status is StepStatus.APPLIED and target.exists()
