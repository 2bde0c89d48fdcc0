"""Test-beds: trying an action (and a proposed undo) on a throw-away copy of the world.

- SQLite: a copy of the database file (through SQLite's backup API, so it is consistent).
- PostgreSQL: one transaction that is always rolled back (DDL is transactional there).
- MySQL/MariaDB: one transaction rolled back, for data changes to transactional tables only
  (DDL commits implicitly and MyISAM keeps its writes, so those are never tried there).
- A workspace: an overlay over it, in the fs domain's sandbox (see `policy.shell`).

`roundtrip` answers the question an undo must pass: does applying the action and then the
undo give back the starting state, compared as a complete dump (schema and every row)?
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from goex_tools.domains.sql.batch_text import batch_sql, statement_sql
from goex_tools.errors import GoexError
from goex_tools.model import Proposal

Dump = dict[str, Any]
NO_DDL_TRIAL = (
    "MySQL commits DDL implicitly (and any statement not a read or a write), so it cannot be "
    "tried in a throw-away transaction"
)


class TrialResult(BaseModel):
    """What a test-bed found: whether the state came back, and where it did not."""

    restored: bool
    testbed: str
    detail: str = ""


CATALOG = "(catalog)"  # the dump's entry for what is not a table's rows or columns
SYSTEM_SCHEMAS = frozenset(
    {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
)

# Every object in the user's schemas: relations (tables, views, sequences, indexes), view
# definitions, functions and their source, triggers, types. Sequence positions are left out:
# they do not go back on rollback either, so no undo could restore them.
PG_CATALOG = """
SELECT 'relation', n.nspname, c.relname, c.relkind::text,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
UNION ALL
SELECT 'function', n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       p.prokind::text, md5(coalesce(p.prosrc, ''))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
UNION ALL
SELECT 'trigger', c.relname, t.tgname, t.tgenabled::text, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
UNION ALL
SELECT 'type', n.nspname, t.typname, t.typtype::text, NULL
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
UNION ALL
SELECT 'schema', n.nspname, NULL, NULL, NULL FROM pg_namespace n
 WHERE n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
"""
SQLITE_CATALOG = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type <> 'table'"


def dump_database(conn: Connection, schemas: Sequence[str] = ()) -> Dump:
    """The database as plain data, to compare before and after: every table's columns (with
    defaults), keys, constraints, indexes and rows (sorted), and, under `CATALOG`, every
    other object (views and their definitions, triggers, functions, types, schemas).

    Tables are read in the default schema and, on PostgreSQL, in every user schema; on MySQL,
    where a schema is another database, in the default one and in `schemas`."""
    inspector = sa.inspect(conn)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        schemas = [s for s in inspector.get_schema_names() if s not in SYSTEM_SCHEMAS]
    default = inspector.default_schema_name
    out: Dump = {}
    for schema in dict.fromkeys([None, *(s for s in schemas if s != default)]):
        prefix = "" if schema is None or schema == default else f"{schema}."
        for table in sorted(inspector.get_table_names(schema=schema)):
            out[prefix + table] = _dump_table(conn, inspector, table, schema)
    catalog = {"postgresql": PG_CATALOG, "sqlite": SQLITE_CATALOG}.get(dialect)
    if catalog is not None:
        out[CATALOG] = sorted((list(r) for r in conn.exec_driver_sql(catalog)), key=repr)
    return out


def _dump_table(
    conn: Connection, inspector: sa.Inspector, table: str, schema: str | None
) -> dict[str, Any]:
    quote = conn.dialect.identifier_preparer.quote
    columns = inspector.get_columns(table, schema=schema)
    names = ", ".join(quote(c["name"]) for c in columns)
    qualified = f"{quote(schema)}.{quote(table)}" if schema else quote(table)
    select = f"SELECT {names} FROM {qualified}"
    rows = sorted((tuple(r) for r in conn.exec_driver_sql(select)), key=repr)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in columns
        ],
        "primary_key": inspector.get_pk_constraint(table, schema=schema).get("constrained_columns"),
        "constraints": sorted(
            repr(sorted(c.items(), key=lambda kv: kv[0]))
            for c in [
                *inspector.get_foreign_keys(table, schema=schema),
                *inspector.get_unique_constraints(table, schema=schema),
                *_checks(inspector, table, schema),
            ]
        ),
        "indexes": sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table, schema=schema)
        ),
        "rows": [list(r) for r in rows],
    }


def _checks(inspector: sa.Inspector, table: str, schema: str | None) -> list[Any]:
    try:
        return list(inspector.get_check_constraints(table, schema=schema))
    except NotImplementedError:
        return []


def describe_difference(before: Dump, after: Dump) -> str:
    """A short account of how two dumps differ (empty if they are equal)."""
    problems = []
    for table in sorted(set(before) | set(after)):
        if before.get(table) == after.get(table):
            continue
        if table == CATALOG:
            problems.append("other objects differ (views, triggers, functions, types, schemas)")
        elif table not in after:
            problems.append(f"table {table} is gone")
        elif table not in before:
            problems.append(f"table {table} was added")
        else:
            problems.extend(
                f"{table}: {part} differ"
                for part in before[table]
                if before[table][part] != after[table][part]
            )
    return "; ".join(problems)


def roundtrip(url: str, action: Sequence[str], undo: Sequence[str]) -> TrialResult:
    """Apply `action` then `undo` on a throw-away copy of the database at `url`."""
    dialect = sa.engine.make_url(url).get_backend_name()
    refusal = untrialable(url, [*action, *undo])
    if refusal is not None:
        return TrialResult(restored=False, testbed="none", detail=refusal)
    schemas = schemas_named(url, [*action, *undo])
    with trial_connection(url) as (conn, testbed):
        before = dump_database(conn, schemas)
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
        difference = describe_difference(before, dump_database(conn, schemas))
    return TrialResult(restored=not difference, testbed=testbed, detail=difference)


def schemas_named(url: str, statements: Sequence[str]) -> list[str]:
    """The schemas that qualify a table the statements name (`archive` of `archive.items`)."""
    from goex_tools.domains.sql.databases import dialect_of
    from goex_tools.domains.sql.statements import classify

    dialect = dialect_of(sa.engine.make_url(url))
    named: set[str] = set()
    for text in statements:
        try:
            found = classify(text, dialect)
        except GoexError:  # malformed: the trial will fail on it and say why
            continue
        named.update(table.rpartition(".")[0] for s in found for table in s.tables)
    return sorted(named - {""})


def rows_changed(url: str, statements: Sequence[str]) -> int:
    """How many rows `statements` change, measured on a throw-away copy (a dry run)."""
    with trial_connection(url) as (conn, _):
        return sum(max(conn.exec_driver_sql(s).rowcount, 0) for s in statements)


@dataclass(frozen=True)
class Measured:
    """What a dry run found an `sql` batch would change.

    - `rows`: rows changed in every table (None: cannot be measured, `why` says why);
    - `tables`: the tables changed (None: cannot be told).
    """

    rows: int | None
    tables: list[str] | None
    why: str = ""


def measure(proposal: Proposal) -> Measured:
    """Run an `sql` batch on a throw-away state and see what it changes: with row capture
    on SQLite and PostgreSQL (every table, trigger writes and cascades included); by row
    counts on MySQL, whose tables are known only when no trigger, view or cascade can
    reach past the tables named. Raises what the batch raises."""
    predicted = proposal.predicted
    unknown = predicted.get("unknown_functions") or []
    if unknown:
        shown = ", ".join(f"{name}()" for name in unknown)
        return Measured(None, None, f"the batch calls {shown}, of unknown effects")
    url = real_url(proposal)
    if url is None:
        return Measured(None, None, "its database cannot be reached")
    from goex_tools.domains.sql.trial import trial

    summary = trial(_batch(proposal), url)
    if summary is not None:
        return Measured(summary.rows_changed, sorted(summary.tables))
    writes = statement_sql(proposal.inputs, predicted)
    named = sorted({t for s in predicted.get("statements") or [] for t in s.get("tables") or []})
    refusal = untrialable(url, writes)
    if refusal is not None:
        return Measured(None, None, refusal)
    rows = rows_changed(url, writes)
    if sa.engine.make_url(url).get_backend_name() == "mysql":
        reach = _mysql_reach(url, named)
        if reach:
            return Measured(rows, None, reach)
    return Measured(rows, named)


def views_read(proposal: Proposal) -> dict[str, list[str]]:
    """For each table an `sql` proposal names that is a view: the tables under it."""
    from goex_tools.domains.sql.views import tables_under

    url = real_url(proposal)
    named = [t for s in proposal.predicted.get("statements") or [] for t in s.get("tables") or []]
    if url is None or not named:
        return {}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return tables_under(conn, named)
    finally:
        engine.dispose()


def _batch(proposal: Proposal) -> str:
    """The batch as run_sql was given it (else its statements, one after the other)."""
    given = batch_sql(proposal.inputs)
    if given.strip():
        return given
    return ";\n".join(statement_sql(proposal.inputs, proposal.predicted))


def _mysql_reach(url: str, tables: Sequence[str]) -> str:
    """Why writing `tables` on MySQL may change others (a trigger, a view, a cascade)."""
    if not tables:
        return ""
    names = [t.rpartition(".")[2] for t in tables]
    checks = {
        "has triggers": "SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE IN :names",
        "is a view": "SELECT TABLE_NAME FROM information_schema.VIEWS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names",
        "has cascading foreign keys": "SELECT REFERENCED_TABLE_NAME FROM "
        "information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() "
        "AND REFERENCED_TABLE_NAME IN :names AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') "
        "OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))",
    }
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for what, query in checks.items():
                statement = sa.text(query).bindparams(sa.bindparam("names", expanding=True))
                found = conn.execute(statement, {"names": names}).scalars().first()
                if found is not None:
                    return f"{found} {what} on MySQL, where no capture sees what they change"
    finally:
        engine.dispose()
    return ""


def untrialable(url: str, statements: Sequence[str]) -> str | None:
    """Why the statements cannot be tried in a throw-away transaction at `url`, or None.

    Only MySQL/MariaDB: DDL and unclassified statements commit the trial transaction, and
    tables whose engine has no transactions (MyISAM, ...) keep what a trial wrote.
    """
    from goex_tools.domains.sql.databases import dialect_of
    from goex_tools.domains.sql.mysql import implicit_commits, non_transactional
    from goex_tools.domains.sql.statements import classify

    dialect = dialect_of(sa.engine.make_url(url))
    if dialect != "mysql":
        return None
    parsed = [s for text in statements for s in classify(text, dialect)]
    if implicit_commits(parsed):
        return NO_DDL_TRIAL
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = non_transactional(conn, parsed)
    finally:
        engine.dispose()
    if tables:
        return f"{', '.join(tables)}: no transactions, so a trial would change the real data"
    return None


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
