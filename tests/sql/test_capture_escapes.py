"""PostgreSQL batches that try to write past row capture: with the capture triggers switched
off (`session_replication_role`), through DDL run by a function or trigger, into tables the
capture does not watch, and through a second connection (dblink). Each either rolls back
exactly or is refused/labelled before it can lie; every check compares a dump of ALL tables."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import ActionRefused, GoexError, Journal, Reversibility, StepStatus
from goex_tools.domains.sql import propose, run_sql
from tests.sql.conftest import RefuseIrreversible, dump_all, execute_script


def dblink_to(url: str) -> str:
    """A dblink connection string to the same database (trust auth on 127.0.0.1)."""
    parsed = sa.engine.make_url(url)
    return (
        f"host={parsed.host} port={parsed.port or 5432} dbname={parsed.database} "
        f"user={parsed.username}"
    )


def test_capture_sees_writes_made_with_replication_role_set_to_replica(
    postgres_url: str, journal: Journal
) -> None:
    """set_config(...) switches user triggers and foreign-key actions off: the capture's own
    triggers fire anyway, so the deleted rows come back (the skipped cascade left the children
    in place, and they stay)."""
    before = dump_all(postgres_url)
    sql = (
        "SELECT set_config('session_replication_role', 'replica', true); "
        "DELETE FROM customers WHERE id <= 2"
    )
    with goex.run("replica", journal=journal) as run:
        result = run_sql(sql, postgres_url)
    assert result.changes is not None and result.changes.tables["customers"].deleted == 2
    gone = dump_all(postgres_url)
    assert [r[0] for r in gone["customers"]] == [3]
    assert len(gone["orders"]) == 4  # the cascade was skipped
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before


def test_capture_refuses_a_trigger_that_truncates_another_table(
    postgres_url: str, journal: Journal
) -> None:
    execute_script(
        postgres_url,
        "CREATE TABLE wipe_requests (id int PRIMARY KEY);"
        "CREATE FUNCTION wipe() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "TRUNCATE order_lines; RETURN NULL; END $$;"
        "CREATE TRIGGER wipe AFTER INSERT ON wipe_requests FOR EACH ROW EXECUTE FUNCTION wipe();",
    )
    before = dump_all(postgres_url)
    assert propose("INSERT INTO wipe_requests VALUES (1)", postgres_url).reversibility is (
        Reversibility.REVERSIBLE
    )
    with goex.run("truncate", journal=journal) as run, pytest.raises(GoexError) as raised:
        run_sql("INSERT INTO wipe_requests VALUES (1)", postgres_url)
    assert "pg_class" in str(raised.value) and "rolled back" in str(raised.value)
    assert dump_all(postgres_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and "pg_class" in (step.error or "")


def test_capture_refuses_a_function_listed_safe_that_drops_a_column(
    postgres_url: str, journal: Journal
) -> None:
    execute_script(
        postgres_url,
        "CREATE FUNCTION slim() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
        "ALTER TABLE customers DROP COLUMN photo; RETURN 1; END $$;",
    )
    before = dump_all(postgres_url)
    sql = "DELETE FROM tags WHERE weight = 2; SELECT slim()"
    assert propose(sql, postgres_url, safe_functions=["slim"]).reversibility is (
        Reversibility.REVERSIBLE
    )
    with goex.run("drop column", journal=journal) as run, pytest.raises(GoexError) as raised:
        run_sql(sql, postgres_url, safe_functions=["slim"])
    assert "pg_attribute" in str(raised.value)
    assert dump_all(postgres_url) == before
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.FAILED]


def test_capture_refuses_writes_to_tables_it_does_not_watch(
    postgres_url: str, journal: Journal
) -> None:
    """A table in information_schema is no capture target (nor a user table to the
    statistics): writing it fails the batch instead of being journaled as undoable."""
    execute_script(
        postgres_url,
        "CREATE TABLE information_schema.notes (id int PRIMARY KEY, body text);"
        "INSERT INTO information_schema.notes VALUES (1, 'keep');",
    )
    before = dump_all(postgres_url)
    before_notes = _rows(postgres_url, "SELECT * FROM information_schema.notes")
    with goex.run("hidden table", journal=journal) as run, pytest.raises(GoexError) as raised:
        run_sql("DELETE FROM information_schema.notes; DELETE FROM tags", postgres_url)
    assert "information_schema.notes" in str(raised.value)
    assert dump_all(postgres_url) == before
    assert _rows(postgres_url, "SELECT * FROM information_schema.notes") == before_notes
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.FAILED]


def test_a_read_calling_a_function_that_writes_through_dblink_is_unknown(
    postgres_url: str, journal: Journal
) -> None:
    """A read-only transaction cannot stop a second connection: a batch calling a function
    of the database's own (any volatility) has unknown effects, said before it runs."""
    execute_script(
        postgres_url,
        "CREATE EXTENSION dblink;"
        "CREATE FUNCTION purge() RETURNS text LANGUAGE sql STABLE AS $$ "
        f"SELECT dblink_exec('{dblink_to(postgres_url)}', 'DELETE FROM tags') $$;"
        "CREATE VIEW purged AS SELECT purge() AS done;",
    )
    before = dump_all(postgres_url)
    calls = ("SELECT purge()", "SELECT * FROM purged", "UPDATE tags SET weight = length(purge())")
    for sql in calls:
        proposal = propose(sql, postgres_url)
        assert proposal.reversibility is Reversibility.IRREVERSIBLE, sql
        assert proposal.compensation is None
        assert "unknown effects" in proposal.notes[0] and "purge" in proposal.notes[0]
        assert proposal.predicted["unknown_functions"] == ["purge"]
        gate = RefuseIrreversible()
        with goex.run("gated", journal=journal, gate=gate), pytest.raises(ActionRefused):
            run_sql(sql, postgres_url)
        assert dump_all(postgres_url) == before

    with goex.run("allowed", journal=journal) as run:
        run_sql("SELECT purge()", postgres_url)
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE  # not "no effect": the rows are gone
    assert dump_all(postgres_url)["tags"] == []

    listed = propose("SELECT purge()", postgres_url, safe_functions=["purge"])
    assert listed.reversibility is Reversibility.NO_EFFECT


def test_a_function_named_like_a_builtin_but_user_defined_is_unknown(postgres_url: str) -> None:
    execute_script(
        postgres_url,
        "CREATE FUNCTION public.upper(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';",
    )
    assert propose("SELECT upper(1)", postgres_url).reversibility is Reversibility.IRREVERSIBLE
    plain = propose("SELECT upper(name), count(*) FROM customers GROUP BY 1", postgres_url)
    assert plain.reversibility is Reversibility.IRREVERSIBLE  # the name may resolve to either
    assert propose("SELECT lower(name) FROM customers", postgres_url).reversibility is (
        Reversibility.NO_EFFECT
    )


@pytest.mark.timeout(120)
def test_a_trigger_writing_back_through_dblink_fails_cleanly_not_hangs(
    postgres_url: str, journal: Journal
) -> None:
    """The trigger's second connection waits for the capture's locks: after lock_timeout it
    is cancelled (so its write never happens), and the batch fails and is rolled back."""
    execute_script(
        postgres_url,
        "CREATE EXTENSION dblink;"
        "CREATE FUNCTION remote_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM dblink_exec('{dblink_to(postgres_url)}', "
        "'INSERT INTO audit (what) VALUES (''remote'')'); RETURN NULL; END $$;"
        "CREATE TRIGGER remote_audit AFTER DELETE ON tags "
        "FOR EACH STATEMENT EXECUTE FUNCTION remote_audit();",
    )
    before = dump_all(postgres_url)
    started = time.monotonic()
    with goex.run("write back", journal=journal) as run, pytest.raises(GoexError) as raised:
        run_sql("DELETE FROM tags WHERE weight = 2", postgres_url, lock_timeout=1.0)
    assert time.monotonic() - started < 30
    assert "lock_timeout" in str(raised.value)
    time.sleep(0.5)  # a write that escaped would be committed by now
    assert dump_all(postgres_url) == before
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.FAILED]


def test_capture_behind_a_long_lock_fails_after_lock_timeout(
    postgres_url: str, journal: Journal
) -> None:
    """Someone holds a lock on a table: the capture's own wait ends after lock_timeout, with
    a clear error, instead of hanging the agent."""
    before = dump_all(postgres_url)
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as other:
            other.exec_driver_sql("LOCK TABLE audit IN ROW EXCLUSIVE MODE")
            started = time.monotonic()
            with goex.run("locked", journal=journal) as run, pytest.raises(GoexError) as raised:
                run_sql("DELETE FROM tags WHERE weight = 2", postgres_url, lock_timeout=0.5)
            assert time.monotonic() - started < 10
            other.rollback()
    finally:
        engine.dispose()
    assert "lock_timeout (0.5 s)" in str(raised.value)
    assert dump_all(postgres_url) == before
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.FAILED]


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()
