"""Crash windows of the step lifecycle and of rollback: a process killed at an exact point,
then `goex rollback` (with or without `goex recover` first) restores the world exactly or
stops with a report saying why; it never says `complete` over a wrong world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, RunStatus, StepStatus
from tests.support.processes import goex_cli, kill_when_ready, python, wait_ready

AGENT = """
import sys
import goex_tools as goex
from tests.support import fileops
journal, action, target, ready = sys.argv[1:5]
with goex.run("doomed", journal=goex.Journal(journal)):
    fileops.create_file(target + ".first", "fine")
    getattr(fileops, action)(target, ready)
"""

COMPLETED_RUN = """
import sys
import goex_tools as goex
from tests.support import fileops
journal, target, ready, when = sys.argv[1:5]
with goex.run("to undo", journal=goex.Journal(journal)) as run:
    fileops.create_file(target + ".first", "fine")
    fileops.create_with_hanging_undo(target, ready, when)
    fileops.create_file(target + ".last", "fine")
print(run.id)
"""

ROLLBACK = """
import sys
import goex_tools as goex
goex.rollback(sys.argv[2], journal=sys.argv[1])
"""


def files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.suffix != ".ready")


def killed_agent(journal_url: str, action: str, target: Path) -> str:
    """An agent killed inside `action`'s effect; its run id."""
    ready = target.with_suffix(".ready")
    kill_when_ready(python(AGENT, journal_url, action, str(target), str(ready)), ready)
    [run] = Journal(journal_url).list_runs()
    return run.id


def rollback_cli(run_id: str, journal_url: str, *extra: str) -> tuple[int, dict[str, object]]:
    result = goex_cli("rollback", run_id, *extra, journal_url=journal_url)
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    return root


def test_killed_before_the_effect_rollback_resolves_it_and_restores_all(
    journal_url: str, work: Path
) -> None:
    run_id = killed_agent(journal_url, "hang_then_create", work / "never.txt")
    code, report = rollback_cli(run_id, journal_url)
    assert code == 0 and report["complete"] is True, report
    assert files(work) == []
    statuses = [s.status for s in Journal(journal_url).steps(run_id)]
    assert statuses == [StepStatus.COMPENSATED, StepStatus.FAILED]
    assert Journal(journal_url).get_run(run_id).status is RunStatus.ROLLED_BACK


def test_killed_after_the_effect_rollback_resolves_it_and_undoes_it(
    journal_url: str, work: Path
) -> None:
    run_id = killed_agent(journal_url, "create_then_hang", work / "made.txt")
    assert files(work) == ["made.txt", "made.txt.first"]
    code, report = rollback_cli(run_id, journal_url)
    assert code == 0 and report["complete"] is True, report
    assert files(work) == []
    assert {s.status for s in Journal(journal_url).steps(run_id)} == {StepStatus.COMPENSATED}


def test_killed_after_an_unprobeable_effect_rollback_stops_and_says_why(
    journal_url: str, work: Path
) -> None:
    run_id = killed_agent(journal_url, "create_then_hang_unprobed", work / "made.txt")
    code, out = rollback_cli(run_id, journal_url)
    assert code == 1
    report = out["report"]
    assert report["complete"] is False  # type: ignore[index]
    [outcome] = report["outcomes"]  # type: ignore[index]
    assert outcome["outcome"] == "pending" and "--assume" in outcome["detail"]
    assert files(work) == ["made.txt", "made.txt.first"]  # nothing undone past it
    journal = Journal(journal_url)
    assert journal.get_run(run_id).status is RunStatus.PARTIALLY_ROLLED_BACK

    pending = journal.steps(run_id)[-1]
    assumed = goex_cli("recover", "--assume", f"{pending.id}=applied", journal_url=journal_url)
    assert assumed.returncode == 0, assumed.stdout
    code, report = rollback_cli(run_id, journal_url)
    assert code == 0 and report["complete"] is True
    assert files(work) == [] and journal.get_run(run_id).status is RunStatus.ROLLED_BACK


@pytest.mark.parametrize("when", ["before", "after"], ids=["before-undo", "after-undo"])
@pytest.mark.parametrize("recover_first", [False, True], ids=["rollback", "recover-rollback"])
def test_rollback_killed_inside_an_undo_is_resumed_exactly(
    journal_url: str, work: Path, when: str, recover_first: bool
) -> None:
    target, ready = work / "middle.txt", work / "undo.ready"
    agent = python(
        COMPLETED_RUN, journal_url, str(target), str(ready), when, stdout=-1
    )  # stdout=PIPE
    out, _ = agent.communicate(timeout=120)
    run_id = out.strip()
    kill_when_ready(python(ROLLBACK, journal_url, run_id), ready)
    journal = Journal(journal_url)
    middle = journal.steps(run_id)[1]
    assert journal.get_step(middle.id).status is StepStatus.COMPENSATING
    assert target.exists() is (when == "before")
    if recover_first:
        [outcome] = goex.recover(journal_url)
        assert outcome.resolution == "released"
    code, report = rollback_cli(run_id, journal_url)
    assert code == 0 and report["complete"] is True, report
    assert files(work) == []
    assert {s.status for s in journal.steps(run_id)} == {StepStatus.COMPENSATED}


LIVE_AGENT = """
import sys
import goex_tools as goex
from tests.support import fileops
journal, root = sys.argv[1:3]
try:
    with goex.run("live", journal=goex.Journal(journal)) as run:
        print(run.id, flush=True)
        fileops.create_file(root + "/one.txt")
        fileops.create_when_told(root + "/two.txt", root + "/two.ready", root + "/go")
        fileops.create_file(root + "/three.txt")
except goex.GoexError as exc:
    print(type(exc).__name__, exc, flush=True)
"""


def test_rollback_of_a_live_run_needs_live_and_then_refuses_its_next_step(
    journal_url: str, work: Path
) -> None:
    agent = python(LIVE_AGENT, journal_url, str(work), stdout=-1)
    assert agent.stdout is not None
    run_id = agent.stdout.readline().strip()
    wait_ready(agent, work / "two.ready")

    code, out = rollback_cli(run_id, journal_url)
    assert code == 1 and "still active" in out["error"] and "--live" in out["error"]  # type: ignore[operator]
    assert (work / "one.txt").exists()  # nothing undone
    journal = Journal(journal_url)
    assert journal.get_run(run_id).status is RunStatus.ACTIVE

    code, out = rollback_cli(run_id, journal_url, "--live")
    assert code == 1  # stops at the step still running
    [outcome] = out["report"]["outcomes"]  # type: ignore[index]
    assert outcome["outcome"] == "pending" and "may still run it" in outcome["detail"]
    assert (work / "one.txt").exists()

    (work / "go").write_text("")
    said, _ = agent.communicate(timeout=120)
    assert (
        "RunClosed" in said and "accepts no new steps" in said and "create_file did not run" in said
    )
    assert not (work / "three.txt").exists()
    assert journal.get_run(run_id).status is not RunStatus.COMPLETED  # stays closed

    code, report = rollback_cli(run_id, journal_url)
    assert code == 0 and report["complete"] is True, report
    assert files(work) == ["go"]
    assert journal.get_run(run_id).status is RunStatus.ROLLED_BACK
    assert [s.tool for s in journal.steps(run_id)] == ["create_file", "create_when_told"]


def test_rolling_back_inside_the_run_needs_live_and_closes_the_run(
    journal: Journal, work: Path
) -> None:
    from tests.support.fileops import create_file

    with (
        pytest.raises(goex.RunClosed, match="accepts no new steps"),
        goex.run("self", journal=journal) as run,
    ):
        create_file(str(work / "a.txt"))
        with pytest.raises(goex.RollbackFailed, match="still active"):
            goex.rollback(run.id, journal=journal)
        assert (work / "a.txt").exists()
        report = goex.rollback(run.id, journal=journal, live=True)
        assert report.complete and not (work / "a.txt").exists()
        create_file(str(work / "b.txt"))
    assert not (work / "b.txt").exists()
    assert journal.get_run(run.id).status is RunStatus.ROLLED_BACK
    with pytest.raises(goex.RunClosed), goex.run("again", run_id=run.id, journal=journal):
        pass


def test_journal_file_deleted_mid_run_refuses_the_next_action(
    sqlite_journal_url: str, tmp_path: Path
) -> None:
    from tests.support.fileops import create_file

    journal_path = Path(sqlite_journal_url.removeprefix("sqlite:///"))
    with (
        pytest.raises(goex.JournalDetached, match="deleted or replaced") as err,
        goex.run("deleted", journal=sqlite_journal_url) as run,
    ):
        create_file(str(tmp_path / "kept.txt"))
        journal_path.unlink()
        create_file(str(tmp_path / "lost.txt"))
    assert "create_file did not run" in str(err.value)
    assert not (tmp_path / "lost.txt").exists()
    shown = goex_cli("show", run.id, journal_url=sqlite_journal_url)
    assert shown.returncode == 2 and "no goex journal at" in json.loads(shown.stdout)["error"]
    assert not journal_path.exists()  # reading it created nothing


def test_journal_directory_deleted_mid_run_refuses_the_next_action(tmp_path: Path) -> None:
    import shutil

    from tests.support.fileops import create_file

    url = f"sqlite:///{tmp_path}/state/.goex/journal.db"
    with pytest.raises(goex.JournalDetached), goex.run("deleted", journal=url):
        create_file(str(tmp_path / "kept.txt"))
        shutil.rmtree(tmp_path / "state")
        with pytest.raises(goex.JournalDetached):
            create_file(str(tmp_path / "lost.txt"))
        (tmp_path / "state" / ".goex").mkdir(parents=True)
        goex.Journal(url).close()  # a new journal at the same path is not the one we held
        create_file(str(tmp_path / "lost.txt"))
    assert not (tmp_path / "lost.txt").exists()
    assert goex.Journal(url).list_runs() == []  # the new journal: nothing was written to it
