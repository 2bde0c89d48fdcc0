"""run_sql on a real SQLite file and a real PostgreSQL database: capture, undo, conflicts."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import Journal, Reversibility, RollbackFailed, RunStatus, StepStatus
from goex_tools.domains.sql import ChangeSummary, run_sql
from tests.sql.conftest import dump_all, execute_script

BATCH = """
INSERT INTO customers (name) VALUES ('dee'), ('eve');
UPDATE orders SET status = 'shipped'
    WHERE customer_id IN (SELECT id FROM customers WHERE tier = 'basic') AND amount > 5;
DELETE FROM customers WHERE name = 'ada';
UPDATE tags SET weight = weight + 10 WHERE label = 'x';
DELETE FROM order_lines WHERE sku IN (SELECT sku FROM order_lines WHERE order_id = 4);
"""


def only_step(journal: Journal, run_id: str) -> goex.Step:
    steps = journal.steps(run_id)
    assert len(steps) == 1
    return steps[0]


def test_a_batch_is_captured_and_rolled_back_exactly(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    with goex.run("batch", journal=journal) as run:
        result = run_sql(BATCH, db_url)
    assert result.committed and result.changes is not None
    counts = result.changes.effect()["tables"]
    assert counts == {
        "customers": {"inserted": 2, "updated": 0, "deleted": 1},
        "orders": {"inserted": 0, "updated": 2, "deleted": 2},  # 2 by ON DELETE CASCADE
        "order_lines": {"inserted": 0, "updated": 0, "deleted": 4},  # 3 cascaded + 1 named
        "audit": {"inserted": 3, "updated": 0, "deleted": 0},  # written by triggers
        "tags": {"inserted": 0, "updated": 2, "deleted": 0},  # no primary key
    }
    changed = dump_all(db_url)
    assert changed != before
    assert sorted(row[1] for row in changed["audit"]) == [
        "customer 1 deleted",
        "order 3: new -> shipped",
        "order 4: paid -> shipped",
    ]

    step = only_step(journal, run.id)
    assert step.status is StepStatus.APPLIED
    assert step.effect["rows_changed"] == 16
    assert step.notes[0].startswith(f"reversible by {result.reversible_by}")
    assert step.notes[1:] == [
        "no primary key on tags: its rows are restored by whole-row match "
        "(identical rows are interchangeable)"
    ]
    assert step.effect["predicted"]["reversible_by"] == result.reversible_by
    assert [s["kind"] for s in step.effect["predicted"]["statements"]] == ["write"] * 5

    report = goex.rollback(run.id, journal=journal)
    assert report.complete
    assert dump_all(db_url) == before
    assert journal.get_step(step.id).status is StepStatus.COMPENSATED
    assert journal.get_run(run.id).status is RunStatus.ROLLED_BACK


def test_several_steps_roll_back_newest_first(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    with goex.run("steps", journal=journal) as run:
        run_sql("UPDATE customers SET tier = 'gold' WHERE id = 2", db_url)
        first_undone = dump_all(db_url)
        run_sql("UPDATE customers SET tier = 'platinum' WHERE tier = 'gold'", db_url)
        run_sql("DELETE FROM customers WHERE tier = 'platinum'", db_url)
    assert dump_all(db_url)["customers"] == [before["customers"][2]]
    goex.rollback(run.id, steps=2, journal=journal)
    assert dump_all(db_url) == first_undone
    goex.rollback(run.id, journal=journal)
    assert dump_all(db_url) == before


def test_a_later_change_to_the_same_rows_is_a_conflict_unless_forced(
    db_url: str, journal: Journal
) -> None:
    before = dump_all(db_url)
    with goex.run("conflict", journal=journal) as run:
        run_sql("UPDATE orders SET amount = amount * 2 WHERE customer_id = 1", db_url)
        run_sql("DELETE FROM tags WHERE label = 'y'", db_url)
    execute_script(db_url, "UPDATE orders SET status = 'refunded' WHERE id = 2;")
    theirs = dump_all(db_url)

    with pytest.raises(RollbackFailed) as failed:
        goex.rollback(run.id, journal=journal)
    outcomes = failed.value.report.outcomes
    assert [o.outcome for o in outcomes] == ["compensated", "conflict"]
    assert "orders" in outcomes[1].detail and "changed" in outcomes[1].detail
    assert "force=True" in outcomes[1].detail
    expected = {**theirs, "tags": before["tags"]}  # the newer step was undone, nothing else
    assert dump_all(db_url) == expected
    conflicted = journal.steps(run.id)[0]
    assert conflicted.status is StepStatus.COMPENSATION_FAILED

    report = goex.rollback(run.id, journal=journal, force=True)
    assert report.complete
    # forced: their 'refunded' is overwritten with the step's before-image, as asked; the audit
    # row their update wrote (and its AUTOINCREMENT counter) was not the step's, and stays
    unrelated = {k: theirs[k] for k in ("audit", "sqlite_sequence") if k in theirs}
    assert dump_all(db_url) == {**before, **unrelated}


def test_a_row_deleted_by_someone_else_is_a_conflict(db_url: str, journal: Journal) -> None:
    with goex.run("gone", journal=journal) as run:
        run_sql("UPDATE order_lines SET sku = 'pencil' WHERE sku = 'pen'", db_url)
    execute_script(db_url, "DELETE FROM order_lines WHERE order_id = 3;")
    theirs = dump_all(db_url)
    with pytest.raises(RollbackFailed, match="deleted since the step"):
        goex.rollback(run.id, journal=journal)
    assert dump_all(db_url) == theirs
    goex.rollback(run.id, journal=journal, force=True)
    lines = dump_all(db_url)["order_lines"]
    assert (1, 1, "pen") in lines and (3, 1, "pen") in lines  # force re-creates the row


def test_reads_are_recorded_without_compensation(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    with goex.run("read", journal=journal) as run:
        result = run_sql(
            "SELECT c.name, count(o.id) AS n FROM customers c JOIN orders o "
            "ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name",
            db_url,
            result_rows=2,
        )
    assert result.results[0].columns == ["name", "n"]
    assert result.results[0].rows == [["ada", 2], ["bob", 1]]
    assert result.results[0].row_count == 3 and result.results[0].truncated
    step = only_step(journal, run.id)
    assert step.status is StepStatus.APPLIED
    assert step.reversibility is Reversibility.NO_EFFECT and step.compensation is None
    assert goex.plan(journal, run.id) == []
    assert dump_all(db_url) == before


def test_confirm_sees_the_changes_and_can_roll_them_back(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    seen: list[ChangeSummary] = []

    def decline(summary: ChangeSummary) -> str:
        seen.append(summary)
        return "rollback"

    with goex.run("declined", journal=journal) as run:
        result = run_sql("DELETE FROM customers WHERE id = 3", db_url, confirm=decline)
    assert not result.committed and "rolled the batch back" in result.message
    assert dump_all(db_url) == before
    [summary] = seen
    deleted = summary.tables["customers"].rows[0]
    assert deleted.op == "delete" and deleted.before is not None
    assert deleted.before["name"] == "cy" and deleted.after is None
    assert summary.tables["orders"].deleted == 1 and summary.tables["order_lines"].deleted == 1
    step = only_step(journal, run.id)
    assert step.status is StepStatus.FAILED and not step.undoable
    assert "rolled the batch back" in (step.error or "")

    with goex.run("accepted", journal=journal):
        assert run_sql(
            "DELETE FROM customers WHERE id = 3", db_url, confirm=lambda s: True
        ).committed
    assert len(dump_all(db_url)["customers"]) == 2


def test_the_sample_shown_to_confirm_is_limited(db_url: str, journal: Journal) -> None:
    values = ", ".join(f"('t{i}', {i})" for i in range(50))
    seen: list[ChangeSummary] = []
    with goex.run("many", journal=journal):
        run_sql(
            f"INSERT INTO tags VALUES {values}", db_url, confirm=lambda s: seen.append(s) or True
        )
    tags = seen[0].tables["tags"]
    assert tags.inserted == 50 and len(tags.rows) == 20 and tags.truncated


def test_postgres_types_schemas_and_odd_names_round_trip(
    postgres_url: str, journal: Journal
) -> None:
    execute_script(
        postgres_url,
        """
        CREATE SCHEMA "Sales Dept";
        CREATE TABLE "Sales Dept"."Line Items" ("Key" text PRIMARY KEY, blob bytea,
            doc jsonb, price numeric(30, 10), at timestamptz, tags text[], ratio float8);
        INSERT INTO "Sales Dept"."Line Items" VALUES
            ('a', '\\x00ff10', '{"n": 1.10, "x": [1, null]}', 12345678901234567890.0123456789,
             '2024-05-06 07:08:09.654321+02', '{p,"q r"}', 0.1),
            ('b', NULL, NULL, NULL, NULL, NULL, 1e-300);
        UPDATE customers SET photo = '\\xdeadbeef' WHERE id = 1;
        """,
    )
    before = dump_all(postgres_url)
    assert before["Sales Dept.Line Items"][0][1] == b"\x00\xff\x10"
    with goex.run("types", journal=journal) as run:
        run_sql(
            'UPDATE "Sales Dept"."Line Items" SET blob = NULL, doc = \'{"y": 2}\', '
            "price = price + 1, at = now(), tags = '{}', ratio = 1.0 / 3; "
            'DELETE FROM "Sales Dept"."Line Items" WHERE "Key" = \'b\'; '
            "DELETE FROM customers WHERE id = 1",
            postgres_url,
        )
    assert dump_all(postgres_url) != before
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before


def test_rows_others_added_to_the_same_tables_are_kept(db_url: str, journal: Journal) -> None:
    """Not a conflict: others' new rows are not the step's. On SQLite the AUTOINCREMENT
    counter then stays where they left it (like a PostgreSQL sequence)."""
    before = dump_all(db_url)
    with goex.run("mine", journal=journal) as run:
        run_sql("INSERT INTO customers (name) VALUES ('dee'); DELETE FROM tags", db_url)
    execute_script(db_url, "INSERT INTO customers (name) VALUES ('eve');")
    theirs = dump_all(db_url)
    assert goex.rollback(run.id, journal=journal).complete
    after = dump_all(db_url)
    assert [r[:2] for r in after["customers"]] == [(1, "ada"), (2, "bob"), (3, "cy"), (5, "eve")]
    assert {**after, "customers": before["customers"]} == {
        **before,
        **{k: theirs[k] for k in ("sqlite_sequence",) if k in theirs},
    }


def test_confirm_sees_whole_rows_before_and_after_an_update(db_url: str, journal: Journal) -> None:
    seen: list[ChangeSummary] = []
    with goex.run("update", journal=journal):
        run_sql(
            "UPDATE customers SET tier = 'gold' WHERE id = 2",
            db_url,
            confirm=lambda s: seen.append(s) or "rollback",
        )
    [row] = seen[0].tables["customers"].rows
    assert row.op == "update" and row.before is not None and row.after is not None
    assert {k: row.before[k] for k in ("id", "name", "tier")} == {
        "id": 2,
        "name": "bob",
        "tier": "basic",
    }
    assert {k: row.after[k] for k in ("id", "name", "tier")} == {
        "id": 2,
        "name": "bob",
        "tier": "gold",
    }
    assert set(row.before) == set(row.after)
