"""The summary a confirm callback sees on PostgreSQL: its sample is the first rows every table
changed, in the order they changed, with their exact images, also when a table's events are
split into several runs by another table's (the sample is read with the log, in one query)."""

from __future__ import annotations

import goex_tools as goex
from goex_tools import Journal
from goex_tools.domains.sql import run_sql

BATCH = """
INSERT INTO tags SELECT 'a' || x, x FROM generate_series(1, 15) AS x;
UPDATE customers SET tier = 'vip' WHERE id = 3;
INSERT INTO tags SELECT 'b' || x, x FROM generate_series(1, 15) AS x;
DELETE FROM tags WHERE label = 'y';
"""


def test_the_sample_is_each_tables_first_changes_in_order(
    postgres_url: str, journal: Journal
) -> None:
    with goex.run("sample", journal=journal):
        result = run_sql(BATCH, postgres_url)
    assert result.changes is not None
    tags = result.changes.tables["tags"]
    assert (tags.inserted, tags.deleted, tags.truncated) == (30, 1, True)
    expected = [("a", x) for x in range(1, 16)] + [("b", x) for x in range(1, 6)]
    assert [(r.op, r.before, r.after) for r in tags.rows] == [
        ("insert", None, {"label": f"{p}{x}", "weight": x}) for p, x in expected
    ]
    [customer] = result.changes.tables["customers"].rows
    assert customer.op == "update" and customer.before and customer.after
    assert (customer.before["tier"], customer.after["tier"]) == ("basic", "vip")
    assert customer.after["joined"] == "2024-01-02T03:04:05.123456+00:00"
    assert not result.changes.tables["customers"].truncated
