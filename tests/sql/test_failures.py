"""Bad input, statements failing half-way, dropped connections and crashes: the database and
the journal stay consistent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import (
    GoexError,
    Journal,
    RetryPolicy,
    Reversibility,
    RollbackFailed,
    StepStatus,
)
from goex_tools.domains.sql import InvalidSql, register_database, run_sql
from goex_tools.domains.sql.changes import ChangeSummary
from goex_tools.domains.sql.databases import DatabaseRef, resolve
from tests.sql.conftest import RefuseIrreversible, dump_all

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.02)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE customers SET tier = WHERE id = 1",
        "DELETE FROM customers WHERE (id = 1",
        "UPDATE customers SET tier = 'x'; BEGIN; DELETE FROM orders",
        "   ;  ",
        "DELETE FROM tags; ABORT; DELETE FROM orders",  # parsed by sqlglot as a column name
        "START TRANSACTION",
        "SAVEPOINT s; DELETE FROM tags; RELEASE SAVEPOINT s",
        "UPDATE tags SET weight = 1; END",
    ],
)
def test_malformed_sql_is_refused_before_anything_runs(
    db_url: str, journal: Journal, sql: str
) -> None:
    before = dump_all(db_url)
    with goex.run("bad", journal=journal) as run, pytest.raises(InvalidSql):
        run_sql(sql, db_url)
    assert dump_all(db_url) == before
    assert journal.steps(run.id) == []


def test_a_batch_failing_half_way_changes_nothing(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    batch = (
        "DELETE FROM customers WHERE id = 1; "
        "INSERT INTO order_lines (order_id, line, sku) VALUES (3, 1, 'duplicate key')"
    )
    with goex.run("half", journal=journal) as run, pytest.raises(Exception, match=r"(?i)unique"):
        run_sql(batch, db_url)
    assert dump_all(db_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.undoable
    assert "order_lines" in (step.error or "")
    assert goex.plan(journal, run.id) == []


def test_a_connection_dropped_before_commit_changes_nothing(
    postgres_url: str, journal: Journal
) -> None:
    before = dump_all(postgres_url)

    def kill_connection(summary: ChangeSummary) -> bool:
        admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        admin.dispose()
        return True

    with goex.run("dropped", journal=journal) as run, pytest.raises(sa.exc.DBAPIError):
        run_sql("DELETE FROM customers WHERE id = 2", postgres_url, confirm=kill_connection)
    assert dump_all(postgres_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.undoable


def test_an_unreachable_database_during_undo_is_retried_then_resumed(
    postgres_url: str, journal: Journal
) -> None:
    register_database("shop", postgres_url)
    before = dump_all(postgres_url)
    with goex.run("undo", journal=journal) as run:
        run_sql("DELETE FROM customers WHERE id = 2", "shop")
    changed = dump_all(postgres_url)
    register_database("shop", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(RollbackFailed, match="still failing after 2 attempts"):
        goex.rollback(run.id, journal=journal, retry=FAST)
    assert dump_all(postgres_url) == changed
    assert journal.steps(run.id)[0].status is StepStatus.COMPENSATION_FAILED
    register_database("shop", postgres_url)
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before


def test_ddl_is_declared_irreversible_before_it_runs(db_url: str, journal: Journal) -> None:
    proposal = goex_sql_propose("ALTER TABLE tags ADD COLUMN note text", db_url)
    assert proposal.reversibility is Reversibility.IRREVERSIBLE
    assert proposal.compensation is None
    assert proposal.predicted["reversible_by"] is None
    assert proposal.predicted["statements"] == [
        {"sql": "ALTER TABLE tags ADD COLUMN note text", "kind": "ddl", "tables": ["tags"]}
    ]

    before = dump_all(db_url)
    with goex.run("refused", journal=journal, gate=RefuseIrreversible()) as run:
        with pytest.raises(goex.ActionRefused):
            run_sql("DROP TABLE tags", db_url)
        run_sql("UPDATE tags SET weight = 0", db_url)  # reversible: allowed
    assert set(dump_all(db_url)) == set(before)
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.REFUSED, StepStatus.APPLIED]

    with goex.run("allowed", journal=journal) as run:
        run_sql("CREATE TABLE notes (id integer PRIMARY KEY, body text)", db_url)
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE and "irreversible: ddl" in step.notes[0]
    assert "notes" in dump_all(db_url)


def goex_sql_propose(sql: str, url: str) -> goex.Proposal:
    from goex_tools.domains.sql import propose

    return propose(sql, url)


def test_passwords_stay_out_of_the_journal(pg_url: str, journal: Journal, tmp_path: Path) -> None:
    """A write through a URL whose password is registered nowhere is refused before it runs
    (its undo could never connect: the journal keeps no password); a named one is undone in
    another process, the name resolving through the environment."""
    from tests.sql.conftest import POSTGRES_SCHEMA, SEED, execute_script

    execute_script(pg_url, POSTGRES_SCHEMA + SEED)
    secret_url = sa.engine.make_url(pg_url).set(password="s3cr3t-pw")  # trust auth ignores it
    real = secret_url.render_as_string(hide_password=False)
    before = dump_all(pg_url)
    with goex.run("secret", journal=journal) as run:
        with pytest.raises(GoexError, match="refused before it ran") as refused:
            run_sql("DELETE FROM customers WHERE id = 3", real)
        assert run_sql("SELECT count(*) FROM customers", real).results[0].rows == [[3]]
    assert "register_database" in str(refused.value) and "s3cr3t-pw" not in str(refused.value)
    assert [s.tool for s in journal.steps(run.id)] == ["run_sql"]  # the read only
    assert dump_all(pg_url) == before

    register_database("crm", real)
    with goex.run("named", journal=journal) as named:
        run_sql("DELETE FROM customers WHERE id = 2", "crm")
        run_sql("DELETE FROM customers WHERE id = 3", real)  # the URL is registered now
    steps = journal.steps(named.id)
    assert [s.compensation.args["database"] for s in steps if s.compensation] == [
        {"name": "crm", "url": secret_url.render_as_string(hide_password=True)}
    ] * 2
    with journal.engine.connect() as conn:
        stored = [
            str(tuple(r))
            for t in ("goex_steps", "goex_events")
            for r in conn.execute(sa.text(f"SELECT * FROM {t}"))
        ]
    assert stored and not any("s3cr3t-pw" in row for row in stored)
    # an unnamed step journaled before such writes were refused finds a registered URL
    hidden = DatabaseRef(url=secret_url.render_as_string(hide_password=True))
    assert resolve(hidden) == real
    # another process: the name resolves through the environment
    script = (
        "import sys, goex_tools as goex\n"
        "goex.rollback(sys.argv[1], journal=sys.argv[2], on_irreversible='skip')\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, named.id, journal.url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "GOEX_SQL_URL_CRM": real},
        check=True,
        capture_output=True,
    )
    assert dump_all(pg_url) == before


def test_a_secret_placeholder_password_is_journaled_as_the_placeholder(
    postgres_url: str, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOEX_SECRET_SHOP_DB", "pl4ceholder-pw")
    monkeypatch.setenv("GOEX_SECRET_SHOP_DB_HOSTS", "127.0.0.1")
    url = postgres_url.replace("postgres@", "postgres:{{secret:shop_db}}@")
    before = dump_all(postgres_url)
    with goex.run("placeholder", journal=journal) as run:
        run_sql("DELETE FROM customers WHERE id = 3", url)
    with journal.engine.connect() as conn:
        stored = " ".join(str(tuple(r)) for r in conn.execute(sa.text("SELECT * FROM goex_steps")))
    assert "pl4ceholder-pw" not in stored and "{{secret:shop_db}}" in stored
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before

    monkeypatch.setenv("GOEX_SECRET_SHOP_DB_HOSTS", "db.example.com")
    with goex.run("wrong host", journal=journal) as run, pytest.raises(goex.ActionRefused):
        run_sql("DELETE FROM customers WHERE id = 3", url)
    assert journal.steps(run.id) == [] and dump_all(postgres_url) == before


def test_a_connection_dropped_at_commit_is_resolved_by_asking_the_server(
    postgres_url: str, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo is journaled, then the connection dies before COMMIT reaches the server: the
    step's failure handler asks PostgreSQL (pg_xact_status) and journals it as failed, with
    nothing to undo, because the transaction did abort."""
    from goex_tools.runtime import StepHandle

    before = dump_all(postgres_url)
    save = StepHandle.save

    def save_then_lose_the_connection(handle: StepHandle, detail: str = "") -> None:
        save(handle, detail)
        admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        admin.dispose()

    monkeypatch.setattr(StepHandle, "save", save_then_lose_the_connection)
    with goex.run("commit lost", journal=journal) as run, pytest.raises(sa.exc.DBAPIError):
        run_sql("DELETE FROM customers WHERE id = 2", postgres_url)
    assert dump_all(postgres_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.undoable
    assert step.compensation is not None and step.compensation.args["txid"]  # it was journaled


def test_a_batch_failing_at_commit_changes_nothing(db_url: str, journal: Journal) -> None:
    """A deferred foreign key fails only at COMMIT, after the undo was journaled: the step is
    journaled as failed (the database says the transaction did not commit), nothing changed."""
    from tests.sql.conftest import execute_script

    execute_script(
        db_url,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, customer_id INTEGER "
        "REFERENCES customers(id) DEFERRABLE INITIALLY DEFERRED);",
    )
    before = dump_all(db_url)
    with (
        goex.run("commit fails", journal=journal) as run,
        pytest.raises(Exception, match=r"(?i)foreign key"),
    ):
        run_sql("UPDATE tags SET weight = 0; INSERT INTO notes VALUES (1, 99)", db_url)
    assert dump_all(db_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.undoable
    assert step.compensation is not None  # it had been journaled before COMMIT
    assert goex.plan(journal, run.id) == []
