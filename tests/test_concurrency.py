"""Several processes on one journal: rollbacks racing each other, and a rollback racing the
agent it rolls back. Losers stop like any stopped rollback; no step is undone twice; no step
the agent journals after the rollback closed its run runs."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import goex_tools as goex
from goex_tools import Journal, RunStatus, StepStatus
from tests.support.fileops import create_file
from tests.support.processes import goex_cli, goex_started, python


def test_concurrent_rollbacks_undo_each_step_once_and_losers_report_why(
    journal_url: str, tmp_path: Path
) -> None:
    journal = Journal(journal_url)
    with goex.run("shared", journal=journal) as run:
        for i in range(60):
            create_file(str(tmp_path / f"{i}.txt"))
    rollbacks = [goex_started("rollback", run.id, journal_url=journal_url) for _ in range(4)]
    results = []
    for proc in rollbacks:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), err  # done, or stopped: never a traceback
        results.append((proc.returncode, json.loads(out)))
    for code, out in results:
        if code == 1:  # a loser: a RollbackFailed with its report, the step named
            last = out["report"]["outcomes"][-1]
            assert last["outcome"] == "busy" and "by another rollback" in last["detail"]
            assert "rollback stopped at step" in out["error"]
    final = goex_cli("rollback", run.id, journal_url=journal_url)  # resumes whatever is left
    assert final.returncode == 0, final.stdout
    assert list(tmp_path.glob("*.txt")) == []
    assert {s.status for s in journal.steps(run.id)} == {StepStatus.COMPENSATED}
    for step in journal.steps(run.id):
        undone = Counter(e.status for e in journal.events(step.id))
        assert undone[StepStatus.COMPENSATING] == 1 and undone[StepStatus.COMPENSATED] == 1
    assert journal.get_run(run.id).status is RunStatus.ROLLED_BACK


BUSY_AGENT = """
import sys
import goex_tools as goex
from tests.support import fileops
journal, root = sys.argv[1:3]
made = 0
try:
    with goex.run("busy", journal=goex.Journal(journal)) as run:
        print(run.id, flush=True)
        for i in range(100000):
            fileops.create_file(f"{root}/{i}.txt")
            made += 1
except goex.RunClosed as exc:
    print(f"closed {made}", flush=True)
"""


def test_rollback_racing_a_running_agent_undoes_everything_it_journaled(
    journal_url: str, tmp_path: Path
) -> None:
    agent = python(BUSY_AGENT, journal_url, str(tmp_path), stdout=-1)
    assert agent.stdout is not None
    run_id = agent.stdout.readline().strip()
    journal = Journal(journal_url)
    while len(journal.steps(run_id)) < 20:
        assert agent.poll() is None
        time.sleep(0.05)
    stopped = goex_cli("rollback", run_id, "--live", journal_url=journal_url)
    said = agent.communicate(timeout=120)[0]
    assert said.startswith("closed "), said  # its next tool call was refused
    if stopped.returncode != 0:  # it met the step the agent was making: run it again
        [outcome] = json.loads(stopped.stdout)["report"]["outcomes"][-1:]
        assert outcome["outcome"] == "pending"
        again = goex_cli("rollback", run_id, journal_url=journal_url)
        assert again.returncode == 0, again.stdout
    assert list(tmp_path.glob("*.txt")) == []  # every file the agent made is gone
    made = int(said.split()[1])
    steps = journal.steps(run_id)
    assert len(steps) == made and {s.status for s in steps} == {StepStatus.COMPENSATED}
    assert journal.get_run(run_id).status is RunStatus.ROLLED_BACK


def test_rollback_losing_a_step_to_another_stops_with_its_report(
    journal: Journal, tmp_path: Path
) -> None:
    """Deterministic: while rollback A undoes the newest step, B undoes the one A planned
    next; A's claim finds it taken and A stops like any stopped rollback."""
    from tests.support import fileops

    work = tmp_path / "work"
    work.mkdir()
    with goex.run("contended", journal=journal) as run:
        create_file(str(work / "first.txt"))
        create_file(str(work / "middle.txt"))
        fileops.create_with_hooked_undo(str(work / "last.txt"))
    first, middle, _last = journal.steps(run.id)
    fileops.UNDO_HOOKS.append(lambda: goex.undo_step(middle.id, journal=journal))
    try:
        goex.rollback(run.id, journal=journal)
    except goex.RollbackFailed as stopped:
        [*_, lost] = stopped.report.outcomes
        assert lost.step_id == middle.id and lost.outcome == "busy"
        assert "was undone by another rollback" in lost.detail
        assert f"rollback stopped at step {middle.id}" in str(stopped)
    else:
        raise AssertionError("rollback A did not stop at the step B took")
    assert sorted(p.name for p in work.iterdir()) == ["first.txt"]
    assert journal.get_step(first.id).status is StepStatus.APPLIED
    assert goex.rollback(run.id, journal=journal).complete  # resumes
    assert list(work.iterdir()) == []
    assert {s.status for s in journal.steps(run.id)} == {StepStatus.COMPENSATED}
