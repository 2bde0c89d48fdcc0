"""Undo time as the work grows (issue 21 items 1-3), goex against the raw inverse statement
timed in the same rounds (interleaved: each round applies and times one of each).

- An UPDATE of 500 / 1,000 / 2,000 / 4,000 rows of a 10,000-row table, undone with
  `goex.undo_step`, against the raw UPDATE that reverses it; once on a plain table and once
  on a table whose AFTER UPDATE trigger writes an audit row per row (the capture log then
  alternates between two tables). Target: undo <= 5x the raw inverse, at every size.
- An INSERT of 500 / 2,000 rows into a table without a primary key holding 0 or 10,000 rows,
  undone, against the raw DELETE of the inserted rows (found by a marker value). Target:
  <= 5x the raw inverse, and linear: the same rows cost the same whatever the table holds.
- `undo_step` of a one-row step in a run with no other step, and in a run with 32 large
  steps (256 KiB of arguments each) before it. Target: independent of the run's size
  (within 1.5x, on SQLite and PostgreSQL journals).

Run: .venv/bin/python -m benchmarks.bench_undo [--quick] [--sqlite-only]
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable

import sqlalchemy as sa

import goex_tools as goex
from benchmarks.harness import Report, Timing, interleaved
from goex_tools.domains.sql import run_sql

POSTGRES_URL = os.environ.get(
    "GOEX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLE_ROWS = 10_000

SCHEMA = {
    "sqlite": """
CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT, ms INTEGER);
CREATE TABLE track (id INTEGER PRIMARY KEY, name TEXT, ms INTEGER);
CREATE TABLE track_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, track_id INTEGER, what TEXT);
CREATE TRIGGER track_audit AFTER UPDATE ON track BEGIN
    INSERT INTO track_audit (track_id, what) VALUES (NEW.id, 'ms ' || OLD.ms || ' -> ' || NEW.ms);
END;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {rows})
INSERT INTO plain SELECT x, 'track ' || x, x * 1000 FROM s;
INSERT INTO track SELECT * FROM plain;
CREATE TABLE points (x INTEGER, label TEXT);
""",
    "postgresql": """
CREATE TABLE plain (id int PRIMARY KEY, name text, ms int);
CREATE TABLE track (id int PRIMARY KEY, name text, ms int);
CREATE TABLE track_audit (id bigserial PRIMARY KEY, track_id int, what text);
CREATE FUNCTION track_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO track_audit (track_id, what) VALUES (NEW.id, 'ms ' || OLD.ms || ' -> ' || NEW.ms);
    RETURN NULL; END $$;
CREATE TRIGGER track_audit AFTER UPDATE ON track FOR EACH ROW EXECUTE FUNCTION track_audit();
INSERT INTO plain SELECT g, 'track ' || g, g * 1000 FROM generate_series(1, {rows}) g;
INSERT INTO track SELECT * FROM plain;
CREATE TABLE points (x int, label text);
""",
}


class Database:
    """A database with the tables above; `raw` runs SQL committed, outside goex."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        if dialect == "sqlite":
            self.url = f"sqlite:///{tempfile.mkdtemp()}/undo.db"
            self._drop: Callable[[], None] = lambda: None
        else:
            admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            name = f"goex_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            self.url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(False)

            def drop() -> None:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()

            self._drop = drop
        self.engine = sa.create_engine(self.url)
        self.raw(SCHEMA[dialect].format(rows=TABLE_ROWS))

    def raw(self, sql: str) -> None:
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.connection.driver_connection.executescript(sql)  # type: ignore[union-attr]
            else:
                conn.exec_driver_sql(sql.replace("%", "%%"))

    def series(self, n: int, select: str, table: str) -> str:
        if self.dialect == "sqlite":
            return (
                f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) "
                f"INSERT INTO {table} SELECT {select} FROM s"
            )
        return f"INSERT INTO {table} SELECT {select} FROM generate_series(1, {n}) AS s(x)"

    def close(self) -> None:
        self.engine.dispose()
        self._drop()


def step_of(journal: goex.Journal, sql: str, url: str) -> str:
    """Run `sql` as the one step of a run of its own and return the step's id."""
    with goex.run("bench step", journal=journal) as run:
        run_sql(sql, url)
    return journal.steps(run.id)[-1].id


def undo_rounds(
    db: Database,
    journal: goex.Journal,
    forward: str,
    inverse: str,
    rounds: int,
    reset: Callable[[], None] | None = None,
) -> list[Timing]:
    """Interleaved: [raw inverse after a raw forward, undo_step after a goex forward]."""
    pending: list[str] = []

    def raw_forward() -> None:
        if reset:
            reset()
        db.raw(forward)

    def goex_forward() -> None:
        if reset:
            reset()
        pending.append(step_of(journal, forward, db.url))

    return interleaved(
        [lambda: db.raw(inverse), lambda: goex.undo_step(pending.pop(), journal=journal)],
        rounds=rounds,
        setups=[raw_forward, goex_forward],
    )


def updates(report: Report, db: Database, label: str, sizes: list[int], rounds: int) -> None:
    journal = goex.Journal(f"sqlite:///{tempfile.mkdtemp()}/journal.db")
    for table, shape in (("plain", "plain table"), ("track", "audit trigger")):
        for n in sizes:
            forward = f"UPDATE {table} SET ms = ms + 1, name = name || '.' WHERE id <= {n}"
            inverse = (
                f"UPDATE {table} SET ms = ms - 1, name = substr(name, 1, length(name) - 1) "
                f"WHERE id <= {n}"
            )
            base, timed = undo_rounds(db, journal, forward, inverse, rounds)
            report.compare(
                f"undo ({label})",
                f"UPDATE {n:,} rows, {shape}",
                base,
                timed,
                max_ratio=5.0,
                extra={"rounds": rounds, "rows": n},
            )
    journal.close()


def keyless(report: Report, db: Database, label: str, sizes: list[int], rounds: int) -> None:
    journal = goex.Journal(f"sqlite:///{tempfile.mkdtemp()}/journal.db")
    for held in (0, TABLE_ROWS):

        def reset(held: int = held) -> None:
            db.raw("DELETE FROM points")
            if held:
                db.raw(db.series(held, "x % 50, 'p' || (x % 50)", "points"))

        for n in sizes:
            forward = db.series(n, "x % 50, 'new ' || (x % 50)", "points")
            inverse = "DELETE FROM points WHERE label LIKE 'new %'"
            base, timed = undo_rounds(db, journal, forward, inverse, rounds, reset)
            report.compare(
                f"undo ({label})",
                f"keyless INSERT {n:,} rows into {held:,}",
                base,
                timed,
                max_ratio=5.0,
                extra={"rounds": rounds, "rows": n, "per_row_s": timed.median / n},
            )
    journal.close()


def forget(key: str, payload: str = "") -> None:
    """The undo of `note`: nothing to restore."""


def note(key: str, payload: str = "") -> str:
    return key


reversible_note = goex.reversible(undo=forget, tool="note")(note)
BIG = "x" * (256 * 1024)


def undo_in_a_big_run(report: Report, label: str, url: str, rounds: int) -> None:
    """undo_step of a small step: alone in its run vs after 32 large steps."""
    journal = goex.Journal(url)
    pending: list[str] = []

    def make(big_steps: int) -> Callable[[], None]:
        def setup() -> None:
            with goex.run("bench", journal=journal) as run:
                for i in range(big_steps):
                    reversible_note(f"big {i}", BIG)
                reversible_note("small")
            pending.append(journal.steps(run.id)[-1].id)
            if url.startswith("sqlite:///"):  # the setup's WAL: not the next commit's to copy
                with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        return setup

    def undo() -> None:
        goex.undo_step(pending.pop(), journal=journal)

    alone, after_big = interleaved([undo, undo], rounds=rounds, setups=[make(0), make(32)])
    report.compare(
        f"undo_step ({label} journal)",
        "small step after 32 large ones vs alone",
        alone,
        after_big,
        max_ratio=1.5,
        extra={"rounds": rounds},
    )
    journal.close()


def main(quick: bool = False, sqlite_only: bool = False) -> None:
    rounds = 3 if quick else 7
    report = Report("undo-sqlite" if sqlite_only else "undo")
    dialects = ["sqlite"] if sqlite_only else ["sqlite", "postgresql"]
    for dialect in dialects:
        label = "SQLite" if dialect == "sqlite" else "PostgreSQL"
        db = Database(dialect)
        try:
            updates(
                report, db, label, [500, 2_000] if quick else [500, 1_000, 2_000, 4_000], rounds
            )
            keyless(report, db, label, [500] if quick else [500, 2_000], rounds)
        finally:
            db.close()
    undo_in_a_big_run(report, "SQLite", f"sqlite:///{tempfile.mkdtemp()}/journal.db", rounds)
    if not sqlite_only:
        pg = Database("postgresql")
        try:
            undo_in_a_big_run(report, "PostgreSQL", pg.url, rounds)
        finally:
            pg.close()
    report.write()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, sqlite_only="--sqlite-only" in sys.argv)
