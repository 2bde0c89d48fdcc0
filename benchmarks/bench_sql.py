"""Row capture cost and undo time of run_sql, on SQLite and PostgreSQL.

- UPDATE and DELETE touching 1, 1,000 and 100,000 rows of a 100,000-row table: run_sql
  (classify, journal, capture every changed row, commit) vs the same raw statement in a
  transaction on the same driver (apsw for SQLite, psycopg for PostgreSQL). Each statement
  is a step of one open run, as an agent's tool calls are (a run's start and end are
  bench_journal's business).
- Undoing such a step (goex.undo_step) vs the raw inverse statement.
Target (issue 4): capture + statement under 2x the raw statement. Rollback has no target.

Run: .venv/bin/python -m benchmarks.bench_sql [--quick] [--sqlite-only]
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import apsw
import sqlalchemy as sa

import goex_tools as goex
from benchmarks.harness import Report, measure
from goex_tools.domains.sql import run_sql

POSTGRES_URL = os.environ.get(
    "GOEX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLE_ROWS = 100_000
FILL = "INSERT INTO bench (id, v, s) SELECT x, x % 97, 'row ' || x FROM series"


class Database:
    """A 100,000-row table on one dialect, with a raw executor and a refill."""

    def __init__(self, url: str, raw: Callable[[str], None]) -> None:
        self.url = url
        self.raw = raw

    def refill(self) -> None:
        self.raw("DELETE FROM bench")
        self.raw(self.fill_sql)

    fill_sql = ""


def sqlite_database(tmp: Path) -> Database:
    path = tmp / "bench.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE bench (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)")

    def raw(sql: str) -> None:
        conn.execute("BEGIN")
        conn.execute(sql)
        conn.execute("COMMIT")

    db = Database(f"sqlite:///{path}", raw)
    db.fill_sql = (
        f"WITH RECURSIVE series(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM series "
        f"WHERE x < {TABLE_ROWS}) " + FILL
    )
    return db


def postgres_database() -> tuple[Database, Callable[[], None]]:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"goex_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bench (id integer PRIMARY KEY, v integer, s text)")

    def raw(sql: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql.replace("%", "%%"))

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    db = Database(url, raw)
    db.fill_sql = f"WITH series(x) AS (SELECT generate_series(1, {TABLE_ROWS})) " + FILL
    return db, drop


def bench(report: Report, label: str, db: Database, sizes: list[int], rounds: int) -> None:
    """Each statement is one step of a run left open, as an agent's tool calls are: the run's
    own start and end (two journal commits, measured by bench_journal) are not counted."""
    journal = goex.Journal(f"sqlite:///{tempfile.mkdtemp()}/journal.db")
    db.refill()
    with goex.run("bench", journal=journal) as run:
        for rows in sizes:
            r = max(3, rounds if rows < 100_000 else 3)
            update = f"UPDATE bench SET v = v + 1, s = s || '.' WHERE id <= {rows}"
            delete = f"DELETE FROM bench WHERE id <= {rows}"
            for verb, sql, setup in (("UPDATE", update, None), ("DELETE", delete, db.refill)):
                base = measure(lambda s=sql: db.raw(s), rounds=r, setup=setup)
                timed = measure(lambda s=sql: run_sql(s, db.url), rounds=r, setup=setup)
                case = f"{verb} {rows:,} rows"
                report.compare(
                    f"run_sql ({label})", case, base, timed, max_ratio=2.0, extra={"rounds": r}
                )
                undo_step(report, label, db, journal, run.id, verb, rows, sql, r)
            db.refill()


def undo_step(
    report: Report,
    label: str,
    db: Database,
    journal: goex.Journal,
    run_id: str,
    verb: str,
    rows: int,
    sql: str,
    rounds: int,
) -> None:
    """goex.undo_step of one statement's step vs the raw statement that reverses it."""
    inverse = (
        f"UPDATE bench SET v = v - 1, s = substr(s, 1, length(s) - 1) WHERE id <= {rows}"
        if verb == "UPDATE"
        else "INSERT INTO bench (id, v, s) SELECT x, x % 97, 'row ' || x FROM "
        + (
            f"(WITH RECURSIVE series(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM series "
            f"WHERE x < {rows}) SELECT x FROM series) AS series"
            if db.url.startswith("sqlite")
            else f"generate_series(1, {rows}) AS series(x)"
        )
    )
    pending: list[str] = []
    seen = [0]  # the last step's seq: steps after it are read, not the whole run's

    def apply_step() -> None:
        if verb == "DELETE":
            db.refill()
        run_sql(sql, db.url)
        step = journal.steps(run_id, after_seq=seen[0])[-1]
        seen[0] = step.seq
        pending.append(step.id)

    def apply_raw() -> None:
        if verb == "DELETE":
            db.refill()
        db.raw(sql)

    base = measure(lambda: db.raw(inverse), rounds=rounds, setup=apply_raw)
    timed = measure(
        lambda: goex.undo_step(pending.pop(), journal=journal), rounds=rounds, setup=apply_step
    )
    case = f"undo {verb} of {rows:,} rows"
    report.compare(f"rollback ({label})", case, base, timed, extra={"rounds": rounds})


def main(quick: bool = False, sqlite_only: bool = False) -> None:
    sizes = [1, 1_000] if quick else [1, 1_000, 100_000]
    rounds = 3 if quick else 7
    report = Report("sql-sqlite" if sqlite_only else "sql")
    bench(report, "SQLite", sqlite_database(Path(tempfile.mkdtemp())), sizes, rounds)
    if not sqlite_only:
        db, drop = postgres_database()
        try:
            bench(report, "PostgreSQL", db, sizes, rounds)
        finally:
            drop()
    report.write()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, sqlite_only="--sqlite-only" in sys.argv)
