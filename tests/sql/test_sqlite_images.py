"""SQLite's whole-row images of updated rows, for every kind of value and key: SQLite writes
them as JSON (blobs as hex), or Python reads them when JSON cannot carry the keys (blob keys,
keys of mixed types). Either way: exact undo, a later change to a column the batch did not
touch is a conflict, force restores the before-images. Every check compares a full dump."""

from __future__ import annotations

import base64
import zlib

import pytest

import goex_tools as goex
from goex_tools import Journal, RollbackFailed
from goex_tools.domains.sql import run_sql, sqlite
from tests.sql.conftest import dump_all, execute_script

ROWS = 1200

SCHEMA = f"""
CREATE TABLE blobs (k BLOB PRIMARY KEY, n INTEGER, r REAL, b BLOB, t TEXT);
CREATE TABLE texts (k TEXT PRIMARY KEY, n INTEGER, r REAL, b BLOB, t TEXT);
CREATE TABLE mixed (k PRIMARY KEY, n INTEGER, r REAL, b BLOB, t TEXT);
CREATE TABLE pairs (a TEXT, c INTEGER, n INTEGER, r REAL, b BLOB, PRIMARY KEY (a, c));
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS})
INSERT INTO blobs SELECT randomblob(8), x, x / 3.0, randomblob(x % 5), 'é "q" ' || x FROM s;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS})
INSERT INTO texts SELECT 'k' || x, x, 1e300 / x, zeroblob(x % 3), char(10, 8232) || x FROM s;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS})
INSERT INTO mixed SELECT CASE x % 3 WHEN 0 THEN x WHEN 1 THEN 'm' || x ELSE x + 0.5 END,
    x, 0.1 * x, x'00ff', NULL FROM s;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS})
INSERT INTO pairs SELECT 'p' || (x % 7), x, x, -x / 7.0, CAST(x AS BLOB) FROM s;
"""

TABLES = ["blobs", "texts", "mixed", "pairs"]


@pytest.fixture
def url(sqlite_url: str) -> str:
    execute_script(sqlite_url, SCHEMA)
    return sqlite_url


def _batch() -> str:
    return "".join(f"UPDATE {t} SET n = n + 1;" for t in TABLES)


def test_every_kind_of_value_and_key_is_undone_exactly(url: str, journal: Journal) -> None:
    before = dump_all(url)
    with goex.run("images", journal=journal) as run:
        result = run_sql(_batch(), url)
    assert result.changes is not None
    assert all(result.changes.tables[t].updated == ROWS for t in TABLES)
    shown = result.changes.tables["blobs"].rows[0]
    assert shown.before is not None and shown.after is not None
    assert shown.after["n"] == shown.before["n"] + 1 and shown.after["t"] == shown.before["t"]
    assert dump_all(url) != before
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(url) == before


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("column", ["r", "b"])
def test_a_later_change_to_an_untouched_column_is_a_conflict_unless_forced(
    url: str, journal: Journal, table: str, column: str
) -> None:
    before = dump_all(url)
    with goex.run("images", journal=journal) as run:
        run_sql(_batch(), url)
    value = "x'abcd'" if column == "b" else "-1.5"
    execute_script(url, f"UPDATE {table} SET {column} = {value} WHERE n = 701;")
    theirs = dump_all(url)

    with pytest.raises(RollbackFailed) as failed:
        goex.rollback(run.id, journal=journal)
    [outcome] = failed.value.report.outcomes
    assert outcome.outcome == "conflict"
    assert f"{table} row" in outcome.detail and "was changed since the step" in outcome.detail
    assert dump_all(url) == theirs

    assert goex.rollback(run.id, journal=journal, force=True).complete
    assert dump_all(url) == before


def test_a_step_journaled_before_compression_still_undoes_exactly(
    url: str, journal: Journal
) -> None:
    before = dump_all(url)
    with goex.run("images", journal=journal) as run:
        run_sql(_batch() + "DELETE FROM texts WHERE n % 5 = 0;", url)
    [step] = journal.steps(run.id)
    assert step.compensation is not None
    args = step.compensation.args
    assert args["packed"] is True

    def unpacked(text: str) -> str:
        return base64.b64encode(zlib.decompress(base64.b64decode(text))).decode()

    plain = {k: v for k, v in args.items() if k != "packed"}
    plain["changeset"] = unpacked(args["changeset"])
    plain["updated"] = [
        {**rows, "images": zlib.decompress(base64.b64decode(rows["images"])).decode()}
        for rows in args["updated"]
    ]
    sqlite.restore(plain, force=False)
    assert dump_all(url) == before
