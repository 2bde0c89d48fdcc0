"""PostgreSQL sessions are pooled between run_sql calls: a batch must never see what an
earlier one left in its session (settings, role, temporary tables), and statements repeated
many times on one reused session keep working."""

from __future__ import annotations

import goex_tools as goex
from goex_tools import Journal
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all


def test_a_batch_sees_a_fresh_session(postgres_url: str, journal: Journal) -> None:
    with goex.run("dirty", journal=journal):
        run_sql(
            "SELECT set_config('search_path', 'nowhere', false), "
            "set_config('application_name', 'dirty', false)",
            postgres_url,
        )
        run_sql("CREATE TEMP TABLE leftover (x int)", postgres_url)
    with goex.run("clean", journal=journal):
        found = run_sql(
            "SELECT current_setting('search_path'), current_setting('application_name'), "
            "to_regclass('pg_temp.leftover') IS NULL",
            postgres_url,
        )
    assert found.results[-1].rows == [['"$user", public', "", True]]


def test_the_same_statements_many_times_on_a_reused_session(
    postgres_url: str, journal: Journal
) -> None:
    before = dump_all(postgres_url)
    with goex.run("again", journal=journal) as run:
        for _ in range(12):
            run_sql("UPDATE tags SET weight = weight + 1 WHERE label = 'x'", postgres_url)
            run_sql("SELECT count(*) FROM tags", postgres_url)
    assert [w for _, w in dump_all(postgres_url)["tags"]] == [13, 13, 2]
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before


def test_what_a_batch_does_to_the_sessions_capture_objects_never_reaches_the_next(
    postgres_url: str, journal: Journal
) -> None:
    """A pooled session keeps goex's log table and trigger functions between batches; a batch
    that changes them (here: the capture function made a no-op, a temporary table shadowing
    a real one) gets a session whose temporary objects are all dropped afterwards."""
    with goex.run("setup", journal=journal):
        run_sql("UPDATE tags SET weight = weight + 1 WHERE label = 'y'", postgres_url)
        run_sql(
            "CREATE OR REPLACE FUNCTION pg_temp.goex_capture() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
            postgres_url,
        )
    with goex.run("shadow", journal=journal):
        run_sql("CREATE TEMP TABLE tags (label text, weight integer)", postgres_url)
    before = dump_all(postgres_url)
    with goex.run("after", journal=journal) as run:
        seen = run_sql("SELECT count(*) FROM tags", postgres_url)
        result = run_sql("DELETE FROM customers WHERE id = 1", postgres_url)
    assert seen.results[-1].rows == [[3]]  # the real table, not a leftover temporary one
    assert result.changes is not None
    assert result.changes.tables["orders"].deleted == 2  # captured by goex's own function
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before


def test_a_batch_that_broke_the_sessions_log_does_not_break_the_next(
    postgres_url: str, journal: Journal
) -> None:
    with goex.run("break", journal=journal):
        run_sql("UPDATE tags SET weight = weight + 1 WHERE label = 'y'", postgres_url)
        run_sql("ALTER TABLE pg_temp.goex_changes DROP COLUMN new", postgres_url)
    before = dump_all(postgres_url)
    with goex.run("after", journal=journal) as run:
        run_sql("UPDATE tags SET weight = 0", postgres_url)
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before
