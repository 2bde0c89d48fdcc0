"""Classifying and splitting SQL with sqlglot: bodies with semicolons stay whole, DDL that
sqlglot cannot read is still DDL, and transaction control is refused however it is spelled.
Then the same on a real SQLite file: a trigger created through run_sql (irreversible, one
statement), whose side effects a later step captures and undoes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.domains.sql import InvalidSql, classify, run_sql
from tests.sql.conftest import dump_all

TRIGGER = """CREATE TRIGGER tags_audit AFTER INSERT ON tags BEGIN
    INSERT INTO audit (what) VALUES ('tag ' || CASE WHEN NEW.weight > 1 THEN 'heavy'
                                                    ELSE 'light' END);
    UPDATE customers SET tier = 'tagged' WHERE id = NEW.weight;
END"""


@pytest.mark.parametrize(
    ("dialect", "sql", "kinds"),
    [
        ("sqlite", TRIGGER + "; SELECT 1", ["ddl", "read"]),
        (
            "postgresql",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; "
            "DELETE FROM t WHERE a = (SELECT CASE WHEN 1 = 1 THEN 2 END)",
            ["ddl", "write"],
        ),
        (
            "mysql",
            "CREATE PROCEDURE p() BEGIN IF 1 THEN SELECT 1; END IF; "
            "CASE WHEN 1 THEN SELECT 2; END CASE; END; SELECT 3",
            ["ddl", "read"],
        ),
        ("postgresql", "TRUNCATE a, b; SELECT 1", ["ddl", "read"]),
        ("postgresql", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", ["write"]),
        ("postgresql", "SELECT * INTO x FROM t", ["ddl"]),
        ("postgresql", "EXPLAIN ANALYZE DELETE FROM t", ["read"]),  # read-only: refused
        ("postgresql", "SHOW search_path; EXPLAIN SELECT 1", ["read", "read"]),
        ("mysql", "SHOW TABLES; DESCRIBE t; EXPLAIN SELECT 1", ["read", "read", "read"]),
        ("mysql", "EXPLAIN DELETE FROM t", ["write"]),
        ("sqlite", "PRAGMA foreign_keys = OFF", ["other"]),
        ("postgresql", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", ["other"]),
        ("postgresql", "SELECT * FROM dblink_exec('db', 'DELETE FROM t')", ["other"]),
        ("postgresql", "SELECT upper(name), my_format(x) FROM t", ["read"]),
        ("postgresql", "DELETE FROM t WHERE pg_cancel_backend(pid)", ["other"]),
    ],
)
def test_statements_are_split_and_classified(dialect: str, sql: str, kinds: list[str]) -> None:
    assert [s.kind for s in classify(sql, dialect)] == kinds


ROWS = ", ".join(f"({i}, 'r{i}', -{i}.5, NULL)" for i in range(2_000))


@pytest.mark.parametrize(
    ("sql", "kind", "tables"),
    [
        (f"INSERT INTO t VALUES {ROWS}", "write", ["t"]),
        (f"INSERT INTO t VALUES {ROWS}, ((SELECT max(a) FROM u), 'x', 0, 1)", "write", ["t", "u"]),
        (
            f"INSERT INTO t VALUES {ROWS}, (1, dblink_exec('db', 'DELETE FROM v'), 0, 0)",
            "other",
            ["t"],
        ),
        (
            f"INSERT INTO t VALUES {ROWS} ON CONFLICT (a) DO UPDATE SET b = excluded.b "
            "RETURNING (SELECT max(c) FROM w)",
            "write",
            ["t", "w"],
        ),
    ],
    ids=["literals", "subquery-in-a-late-row", "function-in-a-late-row", "on-conflict"],
)
def test_a_long_values_list_is_classified_by_every_row(
    sql: str, kind: str, tables: list[str]
) -> None:
    """A list of literal rows is parsed from its first row (fast); anything else in any row
    (a subquery, a function, a clause after the rows) makes it parsed whole."""
    [statement] = classify(sql, "postgresql")
    assert statement.kind == kind and statement.sql == sql and statement.tables == tables


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgresql", "ABORT"),
        ("postgresql", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        ("postgresql", "PREPARE TRANSACTION 'x'"),
        ("postgresql", "ROLLBACK PREPARED 'x'"),
        ("sqlite", "END TRANSACTION"),
        ("sqlite", "RELEASE SAVEPOINT a"),
        ("mysql", "XA START 'x'"),
        ("mysql", "COMMIT"),
    ],
)
def test_transaction_control_is_refused(dialect: str, sql: str) -> None:
    with pytest.raises(InvalidSql, match="transaction control"):
        classify(f"DELETE FROM t; {sql}", dialect)


def test_a_trigger_created_through_run_sql_and_its_side_effects_undone(
    sqlite_url: str, journal: Journal
) -> None:
    with goex.run("schema", journal=journal) as run:
        run_sql(TRIGGER, sqlite_url)
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE and step.notes[0].startswith("irreversible: ddl")
    before = dump_all(sqlite_url)
    with goex.run("tags", journal=journal) as run:
        result = run_sql("INSERT INTO tags VALUES ('z', 2), ('w', 1)", sqlite_url)
    assert result.changes is not None
    assert result.changes.effect()["tables"] == {
        "tags": {"inserted": 2, "updated": 0, "deleted": 0},
        "audit": {"inserted": 2, "updated": 0, "deleted": 0},
        "customers": {"inserted": 0, "updated": 2, "deleted": 0},
    }
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(sqlite_url) == before


def test_explain_analyze_of_a_write_is_refused_by_the_read_only_transaction(
    postgres_url: str, journal: Journal
) -> None:
    before = dump_all(postgres_url)
    with goex.run("explain", journal=journal) as run:
        shown = run_sql("SHOW TimeZone; EXPLAIN SELECT * FROM tags", postgres_url)
        assert shown.results[-1].rows and not shown.committed
        with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
            run_sql("EXPLAIN ANALYZE DELETE FROM customers", postgres_url)
    assert dump_all(postgres_url) == before
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.APPLIED, StepStatus.FAILED]
