"""Row capture cost and undo time of run_sql, on SQLite, PostgreSQL and MariaDB.

- UPDATE and DELETE touching 1, 1,000 and 100,000 rows of a 100,000-row table: run_sql
  (classify, journal, capture every changed row, commit) vs the same raw statement in a
  transaction on the same driver (apsw for SQLite, psycopg for PostgreSQL, PyMySQL for
  MariaDB, whose rows are read back from its binary log). Each statement
  is a step of one open run, as an agent's tool calls are (a run's start and end are
  bench_journal's business).
- Undoing such a step (goex.undo_step) vs the raw inverse statement.
- Shapes of real workloads (issue 13): an UPDATE of 3,503 rows whose audit trigger writes a
  row per row (undo took 18 s on PostgreSQL), INSERTs of 2,000 and 20,000 rows into a table
  without a primary key (its undo was quadratic): undo vs the raw forward statement.
- Journal bytes per step (`journal_bytes` in each run_sql row's extra, and a 5 MB literal,
  a 20,000-row VALUES list): what the step's row holds (inputs, effect, output, undo).
Target (issue 4): capture + statement under 2x the raw statement. Undo of the shapes (issue
13): within 10x the raw forward statement.

MariaDB: the server of GOEX_TEST_MYSQL_BINLOG_URL (log_bin, binlog_format=ROW,
binlog_row_image=FULL; scripts/mysql-binlog-url.sh starts one); skipped with --no-mariadb.

Run: .venv/bin/python -m benchmarks.bench_sql [--quick] [--sqlite-only] [--no-mariadb]
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
MARIADB_URL = os.environ.get(
    "GOEX_TEST_MYSQL_BINLOG_URL", "mysql+pymysql://root@127.0.0.1:13307/test"
)
TABLE_ROWS = 100_000
FILL = "INSERT INTO bench (id, v, s) SELECT x, x % 97, 'row ' || x FROM series"


class Database:
    """A 100,000-row table on one dialect, with a raw executor and a refill."""

    def __init__(self, url: str, raw: Callable[[str], None], dialect: str = "") -> None:
        self.url = url
        self.raw = raw
        self.dialect = dialect or sa.engine.make_url(url).get_backend_name()

    def cat(self, a: str, b: str) -> str:
        """SQL concatenating two texts (MySQL's `||` is OR)."""
        return f"CONCAT({a}, {b})" if self.dialect == "mysql" else f"{a} || {b}"

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


def mariadb_database() -> tuple[Database, Callable[[], None]]:
    """The bench table in a new database on the MariaDB with a row-based binary log."""
    admin = sa.create_engine(MARIADB_URL, poolclass=sa.pool.NullPool)
    name = f"goex_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    url = sa.engine.make_url(MARIADB_URL).set(database=name).render_as_string(False)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bench (id int PRIMARY KEY, v int, s text) ENGINE=InnoDB")

    def raw(sql: str) -> None:
        with engine.begin() as conn:
            for statement in sql.split(";\n"):  # the shapes' scripts: one statement a line
                if statement.strip():
                    conn.exec_driver_sql(statement.replace("%", "%%"))

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()

    db = Database(url, raw, dialect="mysql")
    db.fill_sql = (
        f"INSERT INTO bench (id, v, s) SELECT seq, seq % 97, CONCAT('row ', seq) "
        f"FROM seq_1_to_{TABLE_ROWS}"  # MariaDB's Sequence engine
    )
    return db, drop


def bench(report: Report, label: str, db: Database, sizes: list[int], rounds: int) -> None:
    """Each statement is one step of a run left open, as an agent's tool calls are: the run's
    own start and end (two journal commits, measured by bench_journal) are not counted."""
    journal = goex.Journal(f"sqlite:///{tempfile.mkdtemp()}/journal.db")
    db.refill()
    with goex.run("bench", journal=journal):
        for rows in sizes:
            r = max(3, rounds if rows < 100_000 else 3)
            dotted = db.cat("s", "'.'")
            update = f"UPDATE bench SET v = v + 1, s = {dotted} WHERE id <= {rows}"
            delete = f"DELETE FROM bench WHERE id <= {rows}"
            for verb, sql, setup in (("UPDATE", update, None), ("DELETE", delete, db.refill)):
                base = measure(lambda s=sql: db.raw(s), rounds=r, setup=setup)
                timed = measure(lambda s=sql: run_sql(s, db.url), rounds=r, setup=setup)
                case = f"{verb} {rows:,} rows"
                extra = {"rounds": r, "journal_bytes": last_step_bytes(journal)}
                report.compare(f"run_sql ({label})", case, base, timed, max_ratio=2.0, extra=extra)
                undo_step(report, label, db, journal, verb, rows, sql, r)
            db.refill()


def last_step_bytes(journal: goex.Journal) -> int:
    """What the journal holds for its newest step: inputs, effect, output and undo."""
    with journal.engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT length(inputs) + length(effect) + coalesce(length(output), 0) "
            "+ coalesce(length(compensation), 0) FROM goex_steps ORDER BY seq DESC LIMIT 1"
        ).scalar()
    return int(found or 0)


def step_of(journal: goex.Journal, sql: str, url: str) -> str:
    """Run `sql` as the one step of a run of its own (a rollback closes the run) and return
    the step's id."""
    with goex.run("bench step", journal=journal) as run:
        run_sql(sql, url)
    return journal.steps(run.id)[-1].id


def undo_step(
    report: Report,
    label: str,
    db: Database,
    journal: goex.Journal,
    verb: str,
    rows: int,
    sql: str,
    rounds: int,
) -> None:
    """goex.undo_step of one statement's step vs the raw statement that reverses it."""
    named = db.cat("'row '", "x")
    inverse = (
        f"UPDATE bench SET v = v - 1, s = substr(s, 1, length(s) - 1) WHERE id <= {rows}"
        if verb == "UPDATE"
        else f"INSERT INTO bench (id, v, s) SELECT x, x % 97, {named} FROM "
        + (
            f"(WITH RECURSIVE series(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM series "
            f"WHERE x < {rows}) SELECT x FROM series) AS series"
            if db.dialect == "sqlite"
            else f"generate_series(1, {rows}) AS series(x)"
            if db.dialect == "postgresql"
            else f"(SELECT seq AS x FROM seq_1_to_{rows}) AS series"
        )
    )
    pending: list[str] = []

    def apply_step() -> None:
        if verb == "DELETE":
            db.refill()
        pending.append(step_of(journal, sql, db.url))

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


SHAPES = {
    "sqlite": """
CREATE TABLE track (id INTEGER PRIMARY KEY, name TEXT, milliseconds INTEGER);
CREATE TABLE track_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, track_id INTEGER, what TEXT);
CREATE TRIGGER track_audit AFTER UPDATE ON track BEGIN
    INSERT INTO track_audit (track_id, what)
    VALUES (NEW.id, 'ms ' || OLD.milliseconds || ' -> ' || NEW.milliseconds);
END;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 3503)
INSERT INTO track SELECT x, 'track ' || x, x * 1000 FROM s;
CREATE TABLE points (x INTEGER, label TEXT);
CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT);
""",
    "postgresql": """
CREATE TABLE track (id int PRIMARY KEY, name text, milliseconds int);
CREATE TABLE track_audit (id bigserial PRIMARY KEY, track_id int, what text);
CREATE FUNCTION track_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO track_audit (track_id, what)
    VALUES (NEW.id, 'ms ' || OLD.milliseconds || ' -> ' || NEW.milliseconds);
    RETURN NULL; END $$;
CREATE TRIGGER track_audit AFTER UPDATE ON track FOR EACH ROW EXECUTE FUNCTION track_audit();
INSERT INTO track SELECT g, 'track ' || g, g * 1000 FROM generate_series(1, 3503) g;
CREATE TABLE points (x int, label text);
CREATE TABLE docs (id int PRIMARY KEY, body text);
""",
    "mysql": """
CREATE TABLE track (id int PRIMARY KEY, name text, milliseconds int) ENGINE=InnoDB;
CREATE TABLE track_audit (id bigint AUTO_INCREMENT PRIMARY KEY, track_id int, what text)
    ENGINE=InnoDB;
CREATE TRIGGER track_audit AFTER UPDATE ON track FOR EACH ROW
    INSERT INTO track_audit (track_id, what)
    VALUES (NEW.id, CONCAT('ms ', OLD.milliseconds, ' -> ', NEW.milliseconds));
INSERT INTO track SELECT seq, CONCAT('track ', seq), seq * 1000 FROM seq_1_to_3503;
CREATE TABLE points (x int, label text) ENGINE=InnoDB;
CREATE TABLE docs (id int PRIMARY KEY, body longtext) ENGINE=InnoDB;
""",
}


def shapes(report: Report, label: str, db: Database, quick: bool) -> None:
    """Undo of the issue-13 shapes vs their raw forward statement; journal bytes per step."""
    dialect = db.dialect
    db.raw(SHAPES[dialect])
    journal = goex.Journal(f"sqlite:///{tempfile.mkdtemp()}/journal.db")
    series = {
        "sqlite": "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) "
        "INSERT INTO points SELECT x % 50, 'p' || (x % 50) FROM s",
        "postgresql": "INSERT INTO points SELECT x % 50, 'p' || (x % 50) "
        "FROM generate_series(1, {n}) x",
        "mysql": "INSERT INTO points SELECT seq % 50, CONCAT('p', seq % 50) FROM seq_1_to_{n}",
    }[dialect]
    cases = [("UPDATE of 3,503 audited rows", "UPDATE track SET milliseconds = milliseconds + 1")]
    cases += [
        (f"keyless INSERT of {n:,} rows", series.format(n=n))
        for n in ([2_000] if quick else [2_000, 20_000])
    ]
    rounds = 3 if quick else 5
    for case, sql in cases:
        base = measure(
            lambda s=sql: db.raw(s), rounds=rounds, setup=lambda: db.raw("DELETE FROM points")
        )
        pending: list[str] = []

        def apply(s: str = sql, steps: list[str] = pending) -> None:
            db.raw("DELETE FROM points")
            steps.append(step_of(journal, s, db.url))

        timed = measure(
            lambda steps=pending: goex.undo_step(steps.pop(), journal=journal),
            rounds=rounds,
            setup=apply,
        )
        report.compare(
            f"undo ({label})",
            f"undo {case}",
            base,
            timed,
            max_ratio=10.0,
            extra={"rounds": rounds, "journal_bytes": last_step_bytes(journal)},
        )
    literal = "x" * 5_000_000
    rows = ", ".join(f"({i}, 'value {i:08d}')" for i in range(20_000))
    for case, sql in (
        ("5 MB literal", f"INSERT INTO docs VALUES (1, '{literal}')"),
        ("20,000-row VALUES list", f"INSERT INTO points VALUES {rows}"),
    ):
        db.raw("DELETE FROM docs")
        base = measure(lambda s=sql: db.raw(s), rounds=1, setup=lambda: db.raw("DELETE FROM docs"))
        db.raw("DELETE FROM docs")
        timed = measure(lambda s=sql: step_of(journal, s, db.url), rounds=1)
        size = last_step_bytes(journal)
        report.compare(
            f"journal ({label})",
            f"{case}: {size:,} bytes",
            base,
            timed,
            extra={"journal_bytes": size, "sql_bytes": len(sql)},
        )


def main(quick: bool = False, sqlite_only: bool = False, mariadb: bool = True) -> None:
    sizes = [1, 1_000] if quick else [1, 1_000, 100_000]
    rounds = 3 if quick else 7
    report = Report("sql-sqlite" if sqlite_only else "sql")
    sqlite_db = sqlite_database(Path(tempfile.mkdtemp()))
    bench(report, "SQLite", sqlite_db, sizes, rounds)
    shapes(report, "SQLite", sqlite_db, quick)
    if not sqlite_only:
        db, drop = postgres_database()
        try:
            bench(report, "PostgreSQL", db, sizes, rounds)
            shapes(report, "PostgreSQL", db, quick)
        finally:
            drop()
    if not sqlite_only and mariadb:
        db, drop = mariadb_database()
        try:
            bench(report, "MariaDB", db, sizes, rounds)
            shapes(report, "MariaDB", db, quick)
        finally:
            drop()
    report.write()


if __name__ == "__main__":
    main(
        quick="--quick" in sys.argv,
        sqlite_only="--sqlite-only" in sys.argv,
        mariadb="--no-mariadb" not in sys.argv,
    )
