"""Policy over the real SQL domain: statement kinds, tables, rows changed per action and per run.

Every test compares the complete database (every table's schema and rows) on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import ActionRefused, Journal
from goex_tools.domains.sql import run_sql
from goex_tools.policy import ApprovalRequest, Policy
from tests.policy.sqlstate import seed, state
from tests.sql.conftest import MYSQL_BINLOG_URL, mysql_database

MakePolicy = Callable[..., Policy]

RULES = """\
default: refuse
irreversible: allow
sql:
  rules:
    - kinds: [read]
      decision: allow
    - kinds: [write]
      tables: ["items"]
      decision: allow
    - name: audit-is-append-only
      kinds: [write]
      tables: ["audit_*"]
      decision: ask
    - kinds: [ddl]
      decision: refuse
  max_rows_changed: 3
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        f"sqlite:///{tmp_path}/shop.db"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    seed(url)
    return url


def inserts_only(request: ApprovalRequest) -> bool:
    return all(s["sql"].startswith("INSERT") for s in request.predicted["statements"])


def test_kinds_tables_and_rows_per_action(
    db_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(RULES, approver=inserts_only)
    before = state(db_url)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        rows = run_sql("SELECT name FROM items WHERE qty > 0 ORDER BY id", db_url).results
        assert [r[0] for r in rows[0].rows] == ["apple", "plum", "kiwi"]
        run_sql("UPDATE items SET qty = qty + 1 WHERE qty = 0", db_url)  # 2 rows
        run_sql("INSERT INTO audit_log (id, event) VALUES (2, 'restock')", db_url)  # approved
        attempts = {
            "DELETE FROM audit_log": "audit-is-append-only",  # asked, not approved
            "DROP TABLE items": "sql.rules[3]",
            "UPDATE items SET qty = 0": "sql.max_rows_changed",  # 5 rows > 3: dry run
            "UPDATE items SET qty = 1 WHERE id = 1; UPDATE audit_log SET event = 'x'": (
                "audit-is-append-only"
            ),
        }
        for sql, rule in attempts.items():
            with pytest.raises(ActionRefused, match=re.escape(f"rule '{rule}'")):
                run_sql(sql, db_url)
    after = state(db_url)
    assert after["items"]["rows"] == [
        [1, "apple", 5],
        [2, "pear", 1],
        [3, "plum", 7],
        [4, "fig", 1],
        [5, "kiwi", 2],
    ]
    assert after["audit_log"]["rows"] == [[1, "created"], [2, "restock"]]
    refused = [s for s in sqlite_journal.steps(run.id) if s.status.value == "refused"]
    assert "would change 5 rows (limit 3)" in (refused[2].error or "")
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(db_url) == before


def test_the_rows_budget_of_a_run_counts_the_rows_its_steps_changed(
    db_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """The rows are taken before COMMIT: a batch that would overshoot is refused, unapplied."""
    gate = policy_file("default: allow\nbudgets:\n  max_rows_changed: 4\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        run_sql("UPDATE items SET qty = 9 WHERE id IN (1, 2, 3)", db_url)
        with pytest.raises(ActionRefused, match=r"has 1 left \(3 used\); this step needs 2"):
            run_sql("UPDATE items SET qty = 9 WHERE id IN (4, 5)", db_url)
        run_sql("SELECT count(*) FROM items", db_url)  # reads draw on no budget
        run_sql("UPDATE items SET qty = 9 WHERE id = 4", db_url)
        with pytest.raises(ActionRefused, match=r"budget of 4 rows changed is spent \(4 used\)"):
            run_sql("UPDATE items SET qty = 0 WHERE id = 1", db_url)
    assert [r[2] for r in state(db_url)["items"]["rows"]] == [9, 9, 9, 9, 2]
    steps = sqlite_journal.steps(run.id)
    assert [(s.status.value, s.effect.get("rows_changed")) for s in steps] == [
        ("applied", 3),
        ("refused", None),
        ("applied", None),
        ("applied", 1),
        ("refused", None),
    ]
    assert steps[1].effect["not_applied"]["rows_changed"] == 2


def test_a_dry_run_that_fails_refuses_and_changes_nothing(
    db_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file("default: allow\nsql:\n  max_rows_changed: 10\n")
    before = state(db_url)
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate),
        pytest.raises(ActionRefused, match="the dry run failed"),
    ):
        run_sql("UPDATE items SET qty = NULL WHERE id = 1", db_url)  # NOT NULL violated
    assert state(db_url) == before


def test_mysql_rows_are_measured_in_a_rolled_back_transaction(
    mysql_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    seed(mysql_url)
    gate = policy_file(RULES)
    before = state(mysql_url)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        with pytest.raises(ActionRefused, match=r"would change 5 rows \(limit 3\)"):
            run_sql("UPDATE items SET qty = 0", mysql_url)
        assert state(mysql_url) == before  # the dry run was rolled back
        with pytest.raises(ActionRefused, match=re.escape("rule 'sql.rules[3]'")):
            run_sql("ALTER TABLE items ADD COLUMN note TEXT", mysql_url)
        run_sql("UPDATE items SET qty = 3 WHERE qty = 0", mysql_url)
    assert [r[2] for r in state(mysql_url)["items"]["rows"]] == [5, 3, 7, 3, 2]
    assert [s.status.value for s in sqlite_journal.steps(run.id)] == [
        "refused",
        "refused",
        "irreversible",  # run_sql cannot capture MySQL rows; the policy allows irreversible
    ]


def test_a_table_rule_matches_whatever_schema_qualifies_the_table(
    pg_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    seed(pg_url)
    gate = policy_file(
        "default: allow\nirreversible: allow\nsql:\n  rules:\n"
        '    - {name: audit, tables: ["audit_*"], kinds: [write, ddl], decision: refuse}\n'
        '    - {name: other-schema, tables: ["archive.*"], decision: refuse}\n'
    )
    before = state(pg_url)
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        for sql in (
            "DELETE FROM public.audit_log",
            'DELETE FROM "public"."AUDIT_LOG"',
            "TRUNCATE public.audit_log",
        ):
            with pytest.raises(ActionRefused, match="rule 'audit'"):
                run_sql(sql, pg_url)
        with pytest.raises(ActionRefused, match="rule 'other-schema'"):
            run_sql("SELECT * FROM archive.items", pg_url)
        run_sql("UPDATE public.items SET qty = 1 WHERE id = 2", pg_url)
    assert state(pg_url)["audit_log"] == before["audit_log"]
    assert state(pg_url)["items"]["rows"][1] == [2, "pear", 1]


def test_a_statement_naming_no_visible_table_is_held_to_table_rules(
    pg_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """A DO block or CALL may touch any table: refuse/ask table rules apply, allow ones don't."""
    seed(pg_url)
    run_sql("CREATE PROCEDURE purge() LANGUAGE sql AS 'DELETE FROM audit_log'", pg_url)
    gate = policy_file(
        "default: allow\nirreversible: allow\nsql:\n  rules:\n"
        '    - {name: audit, tables: ["audit_*"], decision: refuse}\n'
    )
    before = state(pg_url)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for sql in ("DO $$ BEGIN DELETE FROM audit_log; END $$", "CALL purge()"):
            with pytest.raises(ActionRefused, match="rule 'audit'"):
                run_sql(sql, pg_url)
        run_sql("SELECT 1", pg_url)  # a read naming no table is not held to it
    assert state(pg_url) == before
    only_items = policy_file(
        "default: refuse\nirreversible: allow\nsql:\n  rules:\n"
        '    - {tables: ["items"], decision: allow}\n'
    )
    with (
        goex.run("agent", journal=sqlite_journal, gate=only_items),
        pytest.raises(ActionRefused, match="rule 'default'"),
    ):
        run_sql("CALL purge()", pg_url)
    assert state(pg_url) == before
    assert [s.status.value for s in sqlite_journal.steps(run.id)] == [
        "refused",
        "refused",
        "applied",
    ]


def test_mysql_tables_without_transactions_are_never_dry_run(
    mysql_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """A "rolled back" dry run on MyISAM would keep its writes: the rows cannot be measured."""
    seed(mysql_url)
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items ENGINE=MyISAM")
    engine.dispose()
    before = state(mysql_url)
    with (
        goex.run("agent", journal=sqlite_journal, gate=policy_file(RULES)),
        pytest.raises(ActionRefused, match=r"rows changed: .*no transactions, so a trial would"),
    ):
        run_sql("UPDATE items SET qty = 0 WHERE id = 1", mysql_url)
    assert state(mysql_url) == before  # the old dry run wrote qty = 0 for good


HIDDEN_WRITES = {
    "sqlite": [
        "CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO secrets (id, value) VALUES (1, 'k1')",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)",
        "CREATE TABLE log (id INTEGER PRIMARY KEY, n INTEGER)",
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50) "
        "INSERT INTO log (id, n) SELECT i, i FROM c",
        "CREATE VIEW secret_view AS SELECT id, value FROM secrets",
        "CREATE TRIGGER secret_view_update INSTEAD OF UPDATE ON secret_view BEGIN "
        "UPDATE secrets SET value = NEW.value WHERE id = OLD.id; END",
        "CREATE VIEW outer_view AS SELECT s.value FROM secret_view AS s",
        "CREATE TRIGGER orders_leak AFTER INSERT ON orders WHEN NEW.note = 'leak' BEGIN "
        "UPDATE secrets SET value = 'leaked'; END",
        "CREATE TRIGGER orders_purge AFTER INSERT ON orders WHEN NEW.note = 'purge' BEGIN "
        "DELETE FROM log; END",
    ],
    "postgres": [
        "CREATE TABLE secrets (id integer PRIMARY KEY, value text NOT NULL)",
        "INSERT INTO secrets (id, value) VALUES (1, 'k1')",
        "CREATE TABLE orders (id integer PRIMARY KEY, note text)",
        "CREATE TABLE log (id integer PRIMARY KEY, n integer)",
        "INSERT INTO log (id, n) SELECT i, i FROM generate_series(1, 50) AS i",
        "CREATE VIEW secret_view AS SELECT id, value FROM secrets",
        "CREATE FUNCTION secret_view_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE secrets SET value = NEW.value WHERE id = OLD.id; RETURN NEW; END $$",
        "CREATE TRIGGER secret_view_update INSTEAD OF UPDATE ON secret_view "
        "FOR EACH ROW EXECUTE FUNCTION secret_view_update()",
        "CREATE VIEW outer_view AS SELECT s.value FROM secret_view AS s",
        "CREATE FUNCTION orders_hidden() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.note = 'leak' THEN UPDATE secrets SET value = 'leaked'; END IF; "
        "IF NEW.note = 'purge' THEN DELETE FROM log; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER orders_hidden AFTER INSERT ON orders "
        "FOR EACH ROW EXECUTE FUNCTION orders_hidden()",
    ],
}


@pytest.fixture(params=["sqlite", "postgres"])
def hidden_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        f"sqlite:///{tmp_path}/hidden.db"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in HIDDEN_WRITES[request.param]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    return url


def test_sql_rules_see_the_tables_views_and_triggers_really_change(
    hidden_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """Decided on the rows a dry run changed in every table, not on the tables named."""
    gate = policy_file(
        "default: allow\nirreversible: allow\nsql:\n  max_rows_changed: 5\n  rules:\n"
        '    - {name: secrets, tables: ["secrets"], decision: refuse}\n'
    )
    before = state(hidden_db)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for sql, why in (
            ("UPDATE secret_view SET value = 'x' WHERE id = 1", "rule 'secrets'"),
            ("INSERT INTO orders (id, note) VALUES (1, 'leak')", "rule 'secrets'"),
            ("INSERT INTO orders (id, note) VALUES (2, 'purge')", r"would change 51 rows"),
            ("DELETE FROM log", r"would change 50 rows"),
        ):
            with pytest.raises(ActionRefused, match=why):
                run_sql(sql, hidden_db)
        assert state(hidden_db) == before
        run_sql("INSERT INTO orders (id, note) VALUES (3, 'plain')", hidden_db)
    assert state(hidden_db)["orders"]["rows"] == [[3, "plain"]]
    assert [s.status.value for s in sqlite_journal.steps(run.id)] == ["refused"] * 4 + ["applied"]


def test_sql_allow_list_covers_only_the_tables_really_changed(
    hidden_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(
        "default: refuse\nsql:\n  rules:\n"
        '    - {kinds: [write], tables: ["orders"], decision: allow}\n'
    )
    before = state(hidden_db)
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        with pytest.raises(ActionRefused, match=r"rule 'default'.*secrets"):
            run_sql("INSERT INTO orders (id, note) VALUES (1, 'leak')", hidden_db)
        assert state(hidden_db) == before
        run_sql("INSERT INTO orders (id, note) VALUES (3, 'plain')", hidden_db)
    assert state(hidden_db)["orders"]["rows"] == [[3, "plain"]]


def test_sql_a_read_through_views_is_held_to_the_rules_of_their_tables(
    hidden_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(
        "default: allow\nsql:\n  rules:\n"
        '    - {name: no-peeking, kinds: [read], tables: ["secrets"], decision: refuse}\n'
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for sql in ("SELECT value FROM secret_view", "SELECT * FROM outer_view"):
            with pytest.raises(ActionRefused, match=r"rule 'no-peeking'.*secrets"):
                run_sql(sql, hidden_db)
        assert run_sql("SELECT count(*) FROM log", hidden_db).results[0].rows == [[50]]
    assert [s.status.value for s in sqlite_journal.steps(run.id)] == ["refused"] * 2 + ["applied"]


def test_sql_a_function_whose_effects_cannot_be_seen_meets_the_strictest_rule(
    pg_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """`SELECT f()` is a read naming no table; f writes `secrets` through dblink, a second
    connection no transaction or capture of the batch sees."""
    engine = sa.create_engine(pg_url)
    database = sa.engine.make_url(pg_url).database
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION dblink")
        conn.exec_driver_sql("CREATE TABLE secrets (id integer PRIMARY KEY, value text)")
        conn.exec_driver_sql("INSERT INTO secrets VALUES (1, 'k1')")
        conn.exec_driver_sql(
            "CREATE FUNCTION leak() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM "
            f"dblink_exec('dbname={database} host=127.0.0.1 user=postgres', "
            "'UPDATE secrets SET value = ''leaked'''); RETURN 1; END $$"
        )
    with engine.connect() as conn:  # the function really writes, whatever reads it
        conn.exec_driver_sql("BEGIN READ ONLY; SELECT leak(); ROLLBACK")
        assert conn.exec_driver_sql("SELECT value FROM secrets").scalar() == "leaked"
        conn.exec_driver_sql("UPDATE secrets SET value = 'k1'")
        conn.commit()
    engine.dispose()
    before = state(pg_url)
    gate = policy_file(
        "default: allow\nirreversible: allow\nsql:\n  rules:\n"
        '    - {name: secrets, tables: ["secrets"], decision: refuse}\n'
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        with pytest.raises(ActionRefused, match="rule 'secrets'"):
            run_sql("SELECT leak()", pg_url)
        run_sql("SELECT 1", pg_url)  # a read naming no table, calling nothing unknown
    limited = policy_file("default: allow\nirreversible: allow\nsql:\n  max_rows_changed: 5\n")
    with (
        goex.run("agent", journal=sqlite_journal, gate=limited),
        pytest.raises(ActionRefused, match="unknown effects"),
    ):
        run_sql("SELECT leak()", pg_url)
    assert state(pg_url) == before


def test_sql_on_mysql_a_trigger_makes_the_tables_changed_unknown(
    mysql_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """MySQL writes are not captured: with a trigger on the table, what else changes cannot
    be told, so an allow rule on the table named does not cover the batch."""
    seed(mysql_url)
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER items_audit AFTER UPDATE ON items FOR EACH ROW "
            "INSERT INTO audit_log (id, event) VALUES (NEW.id + 100, 'changed')"
        )
    engine.dispose()
    before = state(mysql_url)
    with (
        goex.run("agent", journal=sqlite_journal, gate=policy_file(RULES)),
        pytest.raises(ActionRefused, match=r"changes 'items has triggers on MySQL"),
    ):
        run_sql("UPDATE items SET qty = 3 WHERE id = 2", mysql_url)
    assert state(mysql_url) == before


@pytest.fixture
def binlog_db() -> Iterator[str]:
    """An empty database on the MySQL/MariaDB server with a row-based binary log."""
    yield from mysql_database(MYSQL_BINLOG_URL, "")


def test_sql_on_mysql_with_a_binary_log_the_dry_run_sees_trigger_writes(
    binlog_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """With the rows read back from the binary log, the dry run knows which tables a trigger
    writes: the rule on those tables decides, not "cannot be told"."""
    seed(binlog_db)
    engine = sa.create_engine(binlog_db)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER items_audit AFTER UPDATE ON items FOR EACH ROW "
            "INSERT INTO audit_log (id, event) VALUES (NEW.id + 100, 'changed')"
        )
    engine.dispose()
    before = state(binlog_db)
    with (
        goex.run("agent", journal=sqlite_journal, gate=policy_file(RULES)),
        pytest.raises(ActionRefused, match=r"rule 'audit-is-append-only'"),
    ):
        run_sql("UPDATE items SET qty = 3 WHERE id = 2", binlog_db)
    assert state(binlog_db) == before
    engine = sa.create_engine(binlog_db)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER items_audit")
    engine.dispose()
    before = state(binlog_db)
    with goex.run("agent", journal=sqlite_journal, gate=policy_file(RULES)) as run:
        result = run_sql("UPDATE items SET qty = 3 WHERE id = 2", binlog_db)
    assert result.reversible_by == "mysql-binlog-rows"
    assert goex.rollback(run.id, journal=sqlite_journal).complete
    assert state(binlog_db) == before
