"""Undo shapes that used to be replayed row by row (an UPDATE whose audit trigger interleaves
two tables' events; INSERTs into a table without a primary key, which was quadratic): undone
table by table with set-based statements, exactly, and still reporting (or forcing) the one
row someone changed since. Sizes are small here; benchmarks/bench_sql measures the speed."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import Journal, RollbackFailed
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all, execute_script

ROWS = 300

TRACKS = {
    "sqlite": f"""
CREATE TABLE track (id INTEGER PRIMARY KEY, name TEXT, ms INTEGER);
CREATE TABLE track_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, track_id INTEGER, what TEXT);
CREATE TRIGGER audited AFTER UPDATE ON track BEGIN
    INSERT INTO track_audit (track_id, what) VALUES (NEW.id, OLD.ms || ' -> ' || NEW.ms);
END;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS})
INSERT INTO track SELECT x, 'track ' || x, x * 10 FROM s;
CREATE TABLE points (x INTEGER, label TEXT);
""",
    "postgresql": f"""
CREATE TABLE track (id int PRIMARY KEY, name text, ms int);
CREATE TABLE track_audit (id bigserial PRIMARY KEY, track_id int, what text);
CREATE FUNCTION audited() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO track_audit (track_id, what) VALUES (NEW.id, OLD.ms || ' -> ' || NEW.ms);
    RETURN NULL; END $$;
CREATE TRIGGER audited AFTER UPDATE ON track FOR EACH ROW EXECUTE FUNCTION audited();
INSERT INTO track SELECT g, 'track ' || g, g * 10 FROM generate_series(1, {ROWS}) g;
CREATE TABLE points (x int, label text);
""",
}


@pytest.fixture
def tracks(db_url: str) -> str:
    execute_script(db_url, TRACKS["sqlite" if db_url.startswith("sqlite") else "postgresql"])
    return db_url


def test_an_audited_update_of_every_row_is_undone_exactly(tracks: str, journal: Journal) -> None:
    before = dump_all(tracks)
    with goex.run("audited", journal=journal) as run:
        result = run_sql("UPDATE track SET ms = ms + 1", tracks)
    assert result.changes is not None
    assert result.changes.tables["track_audit"].inserted == ROWS
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(tracks) == before


def test_an_audited_update_with_one_row_changed_since_is_refused_or_forced(
    tracks: str, journal: Journal
) -> None:
    before = dump_all(tracks)
    with goex.run("audited", journal=journal) as run:
        run_sql("UPDATE track SET ms = ms + 1", tracks)
    execute_script(tracks, "UPDATE track SET name = 'renamed' WHERE id = 7")
    theirs = dump_all(tracks)
    with pytest.raises(RollbackFailed) as failed:
        goex.rollback(run.id, journal=journal)
    detail = failed.value.report.outcomes[0].detail
    assert "1 row(s) changed" in detail and ("row (id=7)" in detail or "row (7,)" in detail)
    assert dump_all(tracks) == theirs
    assert goex.rollback(run.id, journal=journal, force=True).complete
    forced = dump_all(tracks)
    # the step's before-images everywhere, their rename given way; the audit rows their
    # own update wrote (and SQLite's counter for them) are theirs and stay
    theirs_only = {k: forced[k] for k in ("track_audit", "sqlite_sequence") if k in forced}
    assert forced == {**before, **theirs_only}
    assert len(forced["track_audit"]) == len(before["track_audit"]) + 1


@pytest.mark.parametrize(
    "batch",
    [
        "INSERT INTO points SELECT id % 7, 'p' || (id % 7) FROM track",
        "INSERT INTO points SELECT id % 7, 'p' || (id % 7) FROM track; "
        "DELETE FROM points WHERE x = 3; UPDATE points SET label = 'moved' WHERE x = 5; "
        "INSERT INTO points VALUES (5, 'moved'), (9, NULL)",
    ],
    ids=["inserts", "mixed"],
)
def test_keyless_inserts_with_duplicates_are_undone_exactly(
    tracks: str, journal: Journal, batch: str
) -> None:
    execute_script(tracks, "INSERT INTO points VALUES (1, 'p1'), (1, 'p1'), (3, 'p3')")
    before = dump_all(tracks)
    with goex.run("keyless", journal=journal) as run:
        run_sql(batch, tracks)
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(tracks) == before
