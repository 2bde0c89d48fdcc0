"""The `goex` command over a real journal: tables for people, JSON and exit codes for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools.cli import main
from tests.support.fileops import create_file


@pytest.fixture
def recorded(sqlite_journal_url: str, tmp_path: Path) -> tuple[str, str, Path]:
    journal = goex.Journal(sqlite_journal_url)
    with goex.run("cli-demo", journal=journal) as run:
        create_file(str(tmp_path / "one.txt"), "1")
        create_file(str(tmp_path / "two.txt"), "2")
    return sqlite_journal_url, run.id, tmp_path


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, object]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_runs_and_show(recorded: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, run_id, _ = recorded
    code, runs = cli_json(capsys, "runs", "--journal", url)
    assert code == 0 and [r["id"] for r in runs] == [run_id]  # type: ignore[union-attr,index]
    code, shown = cli_json(capsys, "show", run_id, "--journal", url)
    assert code == 0
    assert [s["tool"] for s in shown["steps"]] == ["create_file", "create_file"]  # type: ignore[index]
    assert main(["show", run_id, "--journal", url]) == 0
    assert "create_file" in capsys.readouterr().out


def test_rollback_dry_run_then_last_step_then_all(
    recorded: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, run_id, root = recorded
    code, report = cli_json(capsys, "rollback", run_id, "--dry-run", "--journal", url)
    assert code == 0 and len(report["outcomes"]) == 2  # type: ignore[index,arg-type]
    assert (root / "two.txt").exists()
    code, report = cli_json(capsys, "rollback", run_id, "--steps", "1", "--journal", url)
    assert code == 0 and not (root / "two.txt").exists() and (root / "one.txt").exists()
    assert main(["rollback", run_id, "--journal", url]) == 0
    assert not (root / "one.txt").exists()


def test_unknown_run_exits_2_and_changes_nothing(
    recorded: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _run_id, root = recorded
    code, out = cli_json(capsys, "rollback", "no-such-run", "--journal", url)
    assert code == 2 and "no run with id 'no-such-run'" in out["error"]  # type: ignore[index]
    assert (root / "one.txt").exists() and (root / "two.txt").exists()
    assert main(["undo", "no-such-step", "--journal", url]) == 2


def test_a_stopped_rollback_exits_1_with_its_report(
    recorded: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, run_id, root = recorded
    (root / "two.txt").unlink()  # someone removed it: the undo (unlink) now fails
    code, out = cli_json(capsys, "rollback", run_id, "--journal", url)
    assert code == 1
    assert "FileNotFoundError" in out["error"]  # type: ignore[index]
    assert out["report"]["outcomes"][0]["outcome"] == "failed"  # type: ignore[index]
    assert (root / "one.txt").exists()  # stopped at the first failure
