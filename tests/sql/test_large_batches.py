"""Batches of a thousand rows and more, on a real SQLite file and a real PostgreSQL server:
the bulk paths (whole rows read per chunk of keys on SQLite, runs of events undone set-based
on PostgreSQL) must keep every guarantee of the row-by-row ones: exact undo, a later change
to any column of any row is a conflict, force restores the step's before-images.
Every check compares a dump of ALL tables."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import Journal, RollbackFailed
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all, execute_script

ROWS = 1200  # more than one chunk of keys (500) on SQLite

MORE_ROWS = """
INSERT INTO orders (customer_id, amount, status)
    SELECT 1 + x % 3, x * 1.25, 'new' FROM ({series}) AS s;
INSERT INTO order_lines (order_id, line, sku)
    SELECT 4, x + 1, 'sku ' || x FROM ({series}) AS s;
"""

# The same orders are updated twice (consecutive events on one table with repeated keys).
BATCH = """
UPDATE order_lines SET sku = sku || '!' WHERE order_id = 4;
UPDATE orders SET amount = amount + 1;
UPDATE orders SET amount = amount + 1 WHERE id % 2 = 0;
"""


def _series(url: str) -> str:
    if url.startswith("sqlite"):
        return (
            f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ROWS}) "
            f"SELECT x FROM n"
        )
    return f"SELECT generate_series(1, {ROWS}) AS x"


@pytest.fixture
def big_url(db_url: str) -> str:
    execute_script(db_url, MORE_ROWS.format(series=_series(db_url)))
    return db_url


def test_a_large_batch_is_undone_exactly(big_url: str, journal: Journal) -> None:
    before = dump_all(big_url)
    with goex.run("big", journal=journal) as run:
        result = run_sql(BATCH, big_url)
    assert result.changes is not None
    assert result.changes.tables["order_lines"].updated == ROWS + 1  # and the seeded line
    assert len(result.changes.tables["orders"].rows) == 20  # the sample, not every row
    assert dump_all(big_url) != before
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(big_url) == before


def test_in_a_large_batch_a_later_change_to_any_column_is_a_conflict_unless_forced(
    big_url: str, journal: Journal
) -> None:
    before = dump_all(big_url)
    with goex.run("big", journal=journal) as run:
        run_sql(BATCH, big_url)
    # a column the batch did not change, of a row it changed; and a row it changed, deleted
    execute_script(
        big_url,
        "UPDATE orders SET status = 'late' WHERE id = 700;"
        "DELETE FROM order_lines WHERE order_id = 4 AND line = 900;",
    )
    theirs = dump_all(big_url)

    with pytest.raises(RollbackFailed) as failed:
        goex.rollback(run.id, journal=journal)
    [outcome] = failed.value.report.outcomes
    assert outcome.outcome == "conflict"
    assert "700" in outcome.detail and "was changed since the step" in outcome.detail
    assert "900" in outcome.detail and "was deleted since the step" in outcome.detail
    assert dump_all(big_url) == theirs

    assert goex.rollback(run.id, journal=journal, force=True).complete
    # forced: 'late' gives way to the step's before-image and line 900 is back; the audit row
    # their update wrote (and its AUTOINCREMENT counter) was not the step's, and stays
    unrelated = {k: theirs[k] for k in ("audit", "sqlite_sequence") if k in theirs}
    assert dump_all(big_url) == {**before, **unrelated}


def test_a_large_delete_whose_row_is_back_is_a_conflict_unless_forced(
    big_url: str, journal: Journal
) -> None:
    before = dump_all(big_url)
    with goex.run("big", journal=journal) as run:
        run_sql("DELETE FROM order_lines WHERE order_id = 4", big_url)
    execute_script(big_url, "INSERT INTO order_lines VALUES (4, 900, 'theirs');")
    theirs = dump_all(big_url)

    with pytest.raises(RollbackFailed) as failed:
        goex.rollback(run.id, journal=journal)
    [outcome] = failed.value.report.outcomes
    assert "900" in outcome.detail and "again since the step" in outcome.detail
    assert dump_all(big_url) == theirs

    assert goex.rollback(run.id, journal=journal, force=True).complete
    assert dump_all(big_url) == before  # forced: the step's row replaces theirs
