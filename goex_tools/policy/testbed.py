"""Test-beds: trying an action (and a proposed undo) on a throw-away copy of the world.

- SQLite: a copy of the database file (through SQLite's backup API, so it is consistent).
- PostgreSQL: one transaction that is always rolled back (DDL is transactional there).
- MySQL/MariaDB: one transaction rolled back, for data changes only (DDL commits implicitly,
  so it is never tried there).
- A workspace: an overlay over it, in the fs domain's sandbox (see `policy.shell`).

`roundtrip` answers the question an undo must pass: does applying the action and then the
undo give back the starting state, compared as a complete dump (schema and every row)?
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from goex_tools.model import Proposal

Dump = dict[str, Any]
NO_DDL_TRIAL = "MySQL commits DDL implicitly, so it cannot be tried in a throw-away transaction"


class TrialResult(BaseModel):
    """What a test-bed found: whether the state came back, and where it did not."""

    restored: bool
    testbed: str
    detail: str = ""


def dump_database(conn: Connection) -> Dump:
    """Every table's columns, primary key, indexes and rows (sorted), as plain data."""
    inspector = sa.inspect(conn)
    out: Dump = {}
    for table in sorted(inspector.get_table_names()):
        columns = inspector.get_columns(table)
        names = [c["name"] for c in columns]
        quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
        select = f"SELECT {quoted} FROM {conn.dialect.identifier_preparer.quote(table)}"
        rows = sorted((tuple(r) for r in conn.exec_driver_sql(select)), key=repr)
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in columns],
            "primary_key": inspector.get_pk_constraint(table).get("constrained_columns"),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "rows": [list(r) for r in rows],
        }
    return out


def describe_difference(before: Dump, after: Dump) -> str:
    """A short account of how two dumps differ (empty if they are equal)."""
    problems = []
    for table in sorted(set(before) | set(after)):
        if table not in after:
            problems.append(f"table {table} is gone")
        elif table not in before:
            problems.append(f"table {table} was added")
        else:
            for part in ("columns", "primary_key", "indexes", "rows"):
                if before[table][part] != after[table][part]:
                    problems.append(f"{table}: {part} differ")
    return "; ".join(problems)


def roundtrip(url: str, action: Sequence[str], undo: Sequence[str]) -> TrialResult:
    """Apply `action` then `undo` on a throw-away copy of the database at `url`."""
    dialect = sa.engine.make_url(url).get_backend_name()
    if implicit_commit(url, [*action, *undo]):
        return TrialResult(restored=False, testbed="none", detail=NO_DDL_TRIAL)
    with trial_connection(url) as (conn, testbed):
        before = dump_database(conn)
        try:
            _run(conn, action)
        except Exception as exc:
            return TrialResult(restored=False, testbed=testbed, detail=f"the action failed: {exc}")
        try:
            _run(conn, undo)
        except Exception as exc:
            return TrialResult(restored=False, testbed=testbed, detail=f"the undo failed: {exc}")
        if dialect == "sqlite":
            conn.commit()
        difference = describe_difference(before, dump_database(conn))
    return TrialResult(restored=not difference, testbed=testbed, detail=difference)


def rows_changed(url: str, statements: Sequence[str]) -> int:
    """How many rows `statements` change, measured on a throw-away copy (a dry run)."""
    with trial_connection(url) as (conn, _):
        return sum(max(conn.exec_driver_sql(s).rowcount, 0) for s in statements)


def count_rows_changed(proposal: Proposal) -> int | None:
    """Rows an `sql` proposal would change, or None when its database cannot be reached."""
    url = real_url(proposal)
    if url is None:
        return None
    writes = [s["sql"] for s in proposal.predicted.get("statements") or []]
    if implicit_commit(url, writes):
        return None
    return rows_changed(url, writes)


def implicit_commit(url: str, statements: Sequence[str]) -> bool:
    """True where a statement would commit the trial transaction: DDL on MySQL/MariaDB."""
    from goex_tools.domains.sql.databases import dialect_of
    from goex_tools.domains.sql.statements import classify

    dialect = dialect_of(sa.engine.make_url(url))
    if dialect != "mysql":
        return False
    return any(s.kind == "ddl" for text in statements for s in classify(text, dialect))


def real_url(proposal: Proposal) -> str | None:
    """The URL to reach an `sql` proposal's database (the journal hides passwords)."""
    from goex_tools.domains.sql.databases import DatabaseRef, resolve

    url = str(proposal.predicted.get("database") or "")
    if not url:
        return None
    try:
        return resolve(DatabaseRef(name=database_name(proposal), url=url))
    except Exception:
        return None


def database_name(proposal: Proposal) -> str | None:
    """The registered name run_sql shows in its inputs as `name (url)`, if any."""
    shown = proposal.inputs.get("database")
    if isinstance(shown, str) and shown.endswith(")") and " (" in shown:
        return shown.partition(" (")[0]
    return None


@contextmanager
def trial_connection(url: str) -> Iterator[tuple[Connection, str]]:
    """A connection whose changes never reach the real database."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with _sqlite_copy(parsed.database or "") as copy:
            engine = sa.create_engine(f"sqlite:///{copy}")
            try:
                with engine.connect() as conn:
                    yield conn, "a copy of the SQLite file"
            finally:
                engine.dispose()
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                yield conn, f"a {parsed.get_backend_name()} transaction, rolled back"
            finally:
                trans.rollback()
    finally:
        engine.dispose()


@contextmanager
def _sqlite_copy(path: str) -> Iterator[Path]:
    if not path or path == ":memory:" or not Path(path).exists():
        raise FileNotFoundError(f"no SQLite database file at {path!r} to copy")
    with tempfile.TemporaryDirectory(prefix="goex-testbed-") as tmp:
        copy = Path(tmp) / "copy.db"
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        yield copy


def _run(conn: Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        conn.exec_driver_sql(statement)
