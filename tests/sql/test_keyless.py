"""Rows nothing identifies for sure: SQLite rows whose primary key is NULL (which the session
extension does not record), and rows of tables without a primary key, whose rowid VACUUM may
renumber and whose PostgreSQL identity is only their value. A batch touching the first is
refused; a forced undo over the second writes exactly the step's before-images or refuses.
Every check compares a dump of ALL tables."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import GoexError, Journal, RollbackFailed, StepStatus
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all, execute_script

NULLABLE_KEYS = (
    "CREATE TABLE codes (code TEXT PRIMARY KEY, n INTEGER);"
    "CREATE TABLE pairs (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b));"
    "CREATE TABLE strict_codes (code TEXT PRIMARY KEY NOT NULL, n INTEGER);"
    "INSERT INTO codes VALUES ('a', 1), ('b', 2);"
    "INSERT INTO pairs VALUES ('a', 1, 'x');"
    "INSERT INTO strict_codes VALUES ('a', 1);"
)


@pytest.mark.parametrize(
    "batch",
    [
        "INSERT INTO codes VALUES (NULL, 3), (NULL, 4)",
        "INSERT INTO pairs VALUES ('a', NULL, 'y')",
        "UPDATE codes SET code = NULL WHERE code = 'b'",
    ],
    ids=["insert-null-key", "insert-null-in-composite-key", "update-key-to-null"],
)
def test_sqlite_batch_writing_a_null_primary_key_is_refused(
    sqlite_url: str, journal: Journal, batch: str
) -> None:
    execute_script(sqlite_url, NULLABLE_KEYS)
    before = dump_all(sqlite_url)
    with goex.run("nulls", journal=journal) as run, pytest.raises(GoexError) as raised:
        run_sql(batch + "; DELETE FROM tags WHERE label = 'y'", sqlite_url)
    assert "NULL" in str(raised.value) and "rolled back" in str(raised.value)
    assert dump_all(sqlite_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED


def test_sqlite_rows_with_a_null_key_already_there_are_refused_if_touched(
    sqlite_url: str, journal: Journal
) -> None:
    execute_script(sqlite_url, NULLABLE_KEYS + "INSERT INTO codes VALUES (NULL, 7), (NULL, 8);")
    before = dump_all(sqlite_url)
    for batch in ("UPDATE codes SET n = n + 1", "DELETE FROM codes WHERE n = 8"):
        with goex.run("touch", journal=journal), pytest.raises(GoexError, match="NULL"):
            run_sql(batch, sqlite_url)
        assert dump_all(sqlite_url) == before

    # a batch leaving those rows alone is recorded and undone as usual
    with goex.run("others", journal=journal) as run:
        run_sql("UPDATE codes SET n = 0 WHERE code = 'a'; DELETE FROM strict_codes", sqlite_url)
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(sqlite_url) == before


def test_keyless_rows_changed_since_cannot_be_forced(db_url: str, journal: Journal) -> None:
    """The row the step updated was changed again: nothing says which row of `tags` is the
    step's, so force refuses (before, it added the before-image beside the row on
    PostgreSQL, and on SQLite wrote over whatever row held the rowid)."""
    before = dump_all(db_url)
    with goex.run("keyless", journal=journal) as run:
        run_sql("UPDATE tags SET weight = 5 WHERE label = 'y'", db_url)
    execute_script(db_url, "UPDATE tags SET weight = 6 WHERE label = 'y'")
    theirs = dump_all(db_url)
    for force in (False, True):
        with pytest.raises(RollbackFailed) as failed:
            goex.rollback(run.id, journal=journal, force=force)
        assert "tags" in str(failed.value.report.outcomes[0].detail)
        assert dump_all(db_url) == theirs
    assert "no primary key" in str(failed.value.report.outcomes[0].detail)
    assert len(dump_all(db_url)["tags"]) == len(before["tags"])


def test_sqlite_keyless_undo_after_vacuum_renumbered_the_rowids(
    sqlite_url: str, journal: Journal
) -> None:
    """VACUUM gives rows of a table without a primary key new rowids: the undo finds the
    step's rows by value (identical rows are interchangeable), never by rowid, so it never
    writes over a row nobody touched."""
    execute_script(
        sqlite_url,
        "DELETE FROM tags; INSERT INTO tags VALUES "
        + ", ".join(f"('t{i}', {i})" for i in range(10)),
    )
    before = dump_all(sqlite_url)
    with goex.run("deleted", journal=journal) as run:
        run_sql("DELETE FROM tags WHERE weight IN (2, 3)", sqlite_url)
    execute_script(sqlite_url, "VACUUM")
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(sqlite_url) == before

    with goex.run("updated", journal=journal) as run:
        run_sql("UPDATE tags SET weight = 50 WHERE weight IN (2, 3)", sqlite_url)
    execute_script(sqlite_url, "DELETE FROM tags WHERE weight = 1; VACUUM")
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(sqlite_url) == {**before, "tags": [r for r in before["tags"] if r[1] != 1]}


def test_sqlite_keyless_batches_past_the_sessions_rowid_limit_undo_exactly(
    sqlite_url: str, journal: Journal
) -> None:
    """SQLite's session extension mis-records a table without a primary key once a batch
    changes more than about 128 of its rows (one UPDATE's row twice, an INSERT lost): such
    tables are logged by goex's own triggers, and undone exactly."""
    execute_script(
        sqlite_url,
        "CREATE TABLE points (x INTEGER, label TEXT, pic BLOB);"
        "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 1000) "
        "INSERT INTO points SELECT v % 7, 'p' || (v % 7), CASE WHEN v % 5 = 0 "
        "THEN x'00ff' END FROM s;",
    )
    before = dump_all(sqlite_url)
    batches = [
        "UPDATE points SET label = 'moved' WHERE x = 5",
        "INSERT INTO points SELECT x, label, pic FROM points WHERE x = 5; "
        "UPDATE points SET x = x + 1 WHERE x = 1; DELETE FROM points WHERE x = 0",
        "UPDATE points SET label = label || '.', x = 0.1 + 0.2 WHERE x < 3",
    ]
    for batch in batches:
        with goex.run("many", journal=journal) as run:
            run_sql(batch, sqlite_url)
        assert dump_all(sqlite_url) != before
        assert goex.rollback(run.id, journal=journal).complete
        assert dump_all(sqlite_url) == before


def test_keyless_insert_undo_after_someone_changed_one_inserted_row(
    db_url: str, journal: Journal
) -> None:
    before = dump_all(db_url)
    with goex.run("inserted", journal=journal) as run:
        run_sql("INSERT INTO tags VALUES ('n', 1), ('n', 1), ('m', 2)", db_url)
    execute_script(db_url, "UPDATE tags SET weight = 9 WHERE label = 'm'")
    theirs = dump_all(db_url)
    with pytest.raises(RollbackFailed) as failed:
        goex.rollback(run.id, journal=journal, force=True)
    assert "no primary key" in failed.value.report.outcomes[0].detail
    assert dump_all(db_url) == theirs
    execute_script(db_url, "UPDATE tags SET weight = 2 WHERE label = 'm'")
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before
