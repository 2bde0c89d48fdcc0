"""`goex` on bad input: exit status 2, a message a person can act on, one valid JSON document
under --json, and nothing created or changed (no file, no directory, no table)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools.cli import main
from tests.support.fileops import create_file
from tests.support.processes import ENV, ROOT


@pytest.fixture
def goex_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, dict[str, object]]]:
    """`goex ... --json` (in this process: a traceback would fail the test) run from `cwd`;
    its exit status and its one JSON document."""
    monkeypatch.delenv("GOEX_JOURNAL_URL", raising=False)

    def run(*args: str, cwd: Path) -> tuple[int, dict[str, object]]:
        monkeypatch.chdir(cwd)
        code = main([*args, "--json"])
        out = capsys.readouterr().out
        return code, json.loads(out)

    return run


GoexJson = Callable[..., tuple[int, dict[str, object]]]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_JOURNALS = [
    pytest.param("notaurl", "not a journal URL: 'notaurl'", id="not-a-url"),
    pytest.param("foo://", "unknown database kind 'foo'", id="foo-scheme"),
    pytest.param("foo://host/db", "unknown database kind 'foo'", id="unknown-database"),
    pytest.param("postgresql+nosuch://x/y", "unknown database kind", id="unknown-driver"),
    pytest.param("sqlite:///{tmp}/missing/journal.db", "no goex journal at", id="mistyped-path"),
    pytest.param("sqlite:///{tmp}/notes.txt", "not a SQLite database", id="not-a-database"),
    pytest.param("sqlite:///{tmp}/notes.txt/journal.db", "no goex journal at", id="parent-is-file"),
    pytest.param("sqlite:///{tmp}/app.db", "has no goex tables", id="application-db"),
    pytest.param("sqlite:///{tmp}", "it is a directory", id="a-directory"),
    pytest.param("postgresql+psycopg://postgres@127.0.0.1:{port}/x", "unreachable", id="no-server"),
]


@pytest.mark.parametrize("command", [["runs"], ["show", "r1"], ["rollback", "r1"], ["recover"]])
@pytest.mark.parametrize(("url", "message"), BAD_JOURNALS)
def test_cli_bad_journal_exits_2_with_json_and_creates_nothing(
    goex_json: GoexJson, tmp_path: Path, command: list[str], url: str, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n")
    app = sqlite3.connect(tmp_path / "app.db")
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    app.close()
    schema = sqlite3.connect(tmp_path / "app.db").execute("SELECT * FROM sqlite_master").fetchall()
    before = listing(tmp_path)
    url = url.format(tmp=tmp_path, port=free_port())
    code, out = goex_json(*command, "--journal", url, cwd=tmp_path)
    assert code == 2 and message in str(out["error"]), out
    assert listing(tmp_path) == before
    after = sqlite3.connect(tmp_path / "app.db").execute("SELECT * FROM sqlite_master").fetchall()
    assert after == schema  # no goex tables added to an application's database


def test_cli_on_a_missing_postgres_database_exits_2_and_creates_nothing(
    goex_json: GoexJson, pg_url: str, tmp_path: Path
) -> None:
    missing = sa.engine.make_url(pg_url).set(database=f"{sa.engine.make_url(pg_url).database}_x")
    code, out = goex_json(
        "runs", "--journal", missing.render_as_string(hide_password=False), cwd=tmp_path
    )
    assert code == 2 and "no goex journal at" in str(out["error"])
    assert "does not exist" in str(out["error"])


def test_cli_read_on_a_postgres_database_without_goex_adds_no_tables(
    goex_json: GoexJson, pg_url: str, tmp_path: Path
) -> None:
    code, out = goex_json("runs", "--journal", pg_url, cwd=tmp_path)
    assert code == 2 and "has no goex tables" in str(out["error"])
    assert sa.inspect(sa.create_engine(pg_url)).get_table_names() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["runs", "--limit", "-1"], "-1 is not between 1", id="limit-negative"),
        pytest.param(["runs", "--limit", str(10**30)], "is not between 1", id="limit-huge"),
        pytest.param(["runs", "--limit", "ten"], "not a whole number", id="limit-text"),
        pytest.param(["show", "{run}", "--offset", "-5"], "not between 0", id="offset-negative"),
        pytest.param(["rollback", "{run}", "--steps", "0"], "steps must be", id="steps-zero"),
        pytest.param(["rollback", "{run}", "--steps", "1", "--to", "X"], "not allowed", id="both"),
        pytest.param(["recover", "--assume", "STEP=maybe"], "STEP=applied or", id="bad-answer"),
        pytest.param(["recover", "--assume", "UNKNOWN=applied"], "no step with id", id="unknown"),
        pytest.param(["undo", "NOSTEP"], "no step with id 'NOSTEP'", id="unknown-step"),
        pytest.param(["show", "NORUN"], "no run with id 'NORUN'", id="unknown-run"),
        pytest.param(["frobnicate"], "invalid choice", id="unknown-command"),
        pytest.param(["runs", "--frob"], "unrecognized arguments", id="unknown-option"),
        pytest.param([], "no command given", id="no-command"),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_message_and_valid_json(
    goex_json: GoexJson, sqlite_journal_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    with goex.run("one", journal=sqlite_journal_url) as run:
        create_file(str(tmp_path / "made.txt"))
    args = [a.format(run=run.id) for a in args]
    code, out = goex_json(*args, "--journal", sqlite_journal_url, cwd=tmp_path)
    assert code == 2 and message in str(out["error"]), out
    assert (tmp_path / "made.txt").exists()  # nothing was undone
    assert goex.Journal(sqlite_journal_url).get_run(run.id).status is goex.RunStatus.COMPLETED


def test_cli_show_pages_a_long_run_newest_first(
    goex_json: GoexJson, sqlite_journal_url: str, tmp_path: Path
) -> None:
    with goex.run("long", journal=sqlite_journal_url) as run:
        for i in range(7):
            create_file(str(tmp_path / f"{i}.txt"))
    code, page = goex_json(
        "show", run.id, "--limit", "3", "--offset", "2", "--journal", sqlite_journal_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and page["total"] == 7 and page["limit"] == 3 and page["offset"] == 2
    paths = [s["inputs"]["path"] for s in page["steps"]]  # type: ignore[attr-defined,index]
    assert paths == [str(tmp_path / f"{i}.txt") for i in (4, 3, 2)]
    shown = subprocess.run(
        [sys.executable, "-m", "goex_tools.cli", "show", run.id, "--limit", "2"],
        cwd=ROOT,
        env={**ENV, "GOEX_JOURNAL_URL": sqlite_journal_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "steps 1-2 of 7, newest first" in shown.stdout
