"""The tables under a view: what reading (or writing) it really reaches.

A view names other relations, views among them; following them down gives the tables a
statement on the view reads. PostgreSQL records them in its catalog (the dependencies of the
view's rewrite rule); SQLite keeps each view's SELECT, which sqlglot reads.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

# Every relation below the named views, through views of views; schema-qualified names
# outside `public`, as the capture names them.
PG_BELOW = """
WITH RECURSIVE below(view, oid, kind) AS (
    SELECT c.relname::text, c.oid, c.relkind FROM pg_class c
    WHERE c.relkind IN ('v', 'm') AND c.relname = ANY (CAST(:names AS text[]))
  UNION
    SELECT b.view, c.oid, c.relkind FROM below b
    JOIN pg_rewrite w ON w.ev_class = b.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
         AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> b.oid
    JOIN pg_class c ON c.oid = d.refobjid
)
SELECT DISTINCT b.view, CASE WHEN n.nspname = 'public' THEN c.relname
                             ELSE n.nspname || '.' || c.relname END
FROM below b JOIN pg_class c ON c.oid = b.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE b.kind NOT IN ('v') ORDER BY 1, 2"""


def tables_under(conn: sa.Connection, names: Iterable[str]) -> dict[str, list[str]]:
    """For each of `names` that is a view: the tables (and materialized views) it reads,
    through any depth of views. Names are matched without their schema. Raises ValueError
    for a view whose definition cannot be read."""
    bare = sorted({name.rpartition(".")[2].strip('"').lower() for name in names})
    if not bare:
        return {}
    if conn.dialect.name == "postgresql":
        found: dict[str, list[str]] = {}
        for view, table in conn.execute(sa.text(PG_BELOW), {"names": bare}):
            found.setdefault(str(view), []).append(str(table))
        return found
    if conn.dialect.name == "sqlite":
        return _sqlite_tables_under(conn, bare)
    return {}


def _sqlite_tables_under(conn: sa.Connection, names: list[str]) -> dict[str, list[str]]:
    views = {
        str(name).lower(): str(sql)
        for name, sql in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view'"
        )
    }
    found: dict[str, list[str]] = {}
    for name in names:
        if name not in views:
            continue
        tables: set[str] = set()
        pending, seen = [name], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for table in _named(views[current]):
                if table in views:
                    pending.append(table)
                else:
                    tables.add(table)
        found[name] = sorted(tables)
    return found


def _named(view_sql: str) -> list[str]:
    """The relations a CREATE VIEW statement reads (CTE names left out)."""
    try:
        tree = sqlglot.parse_one(view_sql, read="sqlite")
    except (ParseError, TokenError) as exc:  # what it reads cannot be told: say so
        raise ValueError(f"cannot read the view {view_sql[:80]!r}: {exc}") from None
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    created = tree.this if isinstance(tree, exp.Create) else None
    own = created.name.lower() if isinstance(created, exp.Table) else ""
    return sorted(
        {t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() not in ctes | {own}}
    )
