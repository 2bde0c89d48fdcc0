"""Policy over the real SQL domain: statement kinds, tables, rows changed per action and per run.

Every test compares the complete database (every table's schema and rows) on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import ActionRefused, Journal
from goex_tools.domains.sql import run_sql
from goex_tools.policy import ApprovalRequest, Policy
from tests.policy.sqlstate import seed, state

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
        pytest.raises(ActionRefused, match="rows changed cannot be measured here"),
    ):
        run_sql("UPDATE items SET qty = 0 WHERE id = 1", mysql_url)
    assert state(mysql_url) == before  # the old dry run wrote qty = 0 for good
