"""Foreign keys a PostgreSQL undo must check itself.

The undo runs with `session_replication_role = replica`, which switches off user triggers and
foreign-key triggers alike (so that it restores rows, not their side effects). Without a check,
an undo could re-insert a row whose parent someone deleted since, or delete a row that someone
else's new rows now reference. This module checks, before COMMIT, only the constraints and rows
the undo touched: rows it wrote must find their parents; keys it removed must have no children.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from goex_tools.domains.sql.quoting import concat, ident

LIMIT = 5  # violations named in the error

CONSTRAINTS = """
SELECT c.conname,
       '"' || replace(cn.nspname, '"', '""') || '"."' || replace(cr.relname, '"', '""') || '"',
       '"' || replace(pn.nspname, '"', '""') || '"."' || replace(pr.relname, '"', '""') || '"',
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint c
JOIN pg_class cr ON cr.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cr.relnamespace
JOIN pg_class pr ON pr.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pr.relnamespace
WHERE c.contype = 'f' AND (c.conrelid = ANY (CAST(CAST(:names AS text[]) AS regclass[]))
                           OR c.confrelid = ANY (CAST(CAST(:names AS text[]) AS regclass[])))
"""


class Touched:
    """What an undo did to one table: the images it wrote, and the images it took away."""

    def __init__(self) -> None:
        self.written: list[str] = []  # JSON arrays of rows the undo inserted or updated to
        self.removed: list[str] = []  # JSON arrays of rows the undo deleted or updated from
        self.key: list[str] = []


def violations(conn: Connection, touched: dict[str, Touched]) -> list[str]:
    """The foreign-key violations the undo would leave (empty when it may commit)."""
    if not touched:
        return []
    found: list[str] = []
    names = {"names": sorted(touched)}  # quoted "schema"."table", as _Table names them
    for name, child, parent, fcols, pcols in conn.execute(sa.text(CONSTRAINTS), names):
        fk = _ForeignKey(str(name), str(child), str(parent), list(fcols), list(pcols))
        if child in touched and touched[child].written:
            found += fk.orphans(conn, touched[child])
        if parent in touched and touched[parent].removed:
            found += fk.left_behind(conn, touched[parent])
        if len(found) >= LIMIT:
            break
    return found[:LIMIT]


def touched_by(events: Iterable[tuple[str, str, str | None, str | None]]) -> dict[str, Touched]:
    """Group undone runs of events (table, op, old rows, new rows; each a JSON array) into
    what the undo wrote and removed."""
    touched: dict[str, Touched] = defaultdict(Touched)
    for table, op, old, new in events:
        if op in ("delete", "update") and old is not None:
            touched[table].written.append(old)
        if op in ("insert", "update") and new is not None:
            touched[table].removed.append(new)
    return dict(touched)


class _ForeignKey:
    def __init__(
        self, name: str, child: str, parent: str, fcols: list[str], pcols: list[str]
    ) -> None:
        self.name, self.child, self.parent = name, child, parent
        self.fcols, self.pcols = fcols, pcols

    def orphans(self, conn: Connection, table: Touched) -> list[str]:
        """Rows the undo wrote into the child table whose parent row is missing."""
        if table.key:  # the row as it is now (the undo may have written it more than once)
            on = " AND ".join(f"c.{ident(k)} = r.{ident(k)}" for k in table.key)
            rows = f"{_records(self.child)} AS r JOIN {self.child} AS c ON {on}"
        else:
            rows = f"{_records(self.child)} AS c"
        return self._query(
            conn,
            f"SELECT DISTINCT {_text('c', self.fcols)} FROM {rows} WHERE "
            f"{_not_null('c', self.fcols)} AND NOT EXISTS (SELECT 1 FROM {self.parent} AS p "
            f"WHERE {_match('p', self.pcols, 'c', self.fcols)})",
            table.written,
            f"restores {self.child} rows whose {self.parent} row is gone",
        )

    def left_behind(self, conn: Connection, table: Touched) -> list[str]:
        """Keys the undo removed from the parent table that child rows still reference."""
        return self._query(
            conn,
            f"SELECT DISTINCT {_text('r', self.pcols)} FROM {_records(self.parent)} AS r WHERE "
            f"{_not_null('r', self.pcols)} AND NOT EXISTS (SELECT 1 FROM {self.parent} AS p "
            f"WHERE {_match('p', self.pcols, 'r', self.pcols)}) AND EXISTS (SELECT 1 FROM "
            f"{self.child} AS c WHERE {_match('c', self.fcols, 'r', self.pcols)})",
            table.removed,
            f"removes {self.parent} rows that {self.child} rows (added since) reference",
        )

    def _query(self, conn: Connection, sql: str, images: list[str], what: str) -> list[str]:
        keys = conn.execute(sa.text(sql + f" LIMIT {LIMIT}"), {"imgs": concat(images)}).scalars()
        return [f"{what} ({self.name}: {key})" for key in keys]


def _records(table: str) -> str:
    return f"json_populate_recordset(NULL::{table}, CAST(:imgs AS json))"


def _text(alias: str, cols: list[str]) -> str:
    return "concat_ws(', ', " + ", ".join(f"{alias}.{ident(c)}::text" for c in cols) + ")"


def _not_null(alias: str, cols: list[str]) -> str:
    return " AND ".join(f"{alias}.{ident(c)} IS NOT NULL" for c in cols)


def _match(left: str, lcols: list[str], right: str, rcols: list[str]) -> str:
    return " AND ".join(
        f"{left}.{ident(a)} = {right}.{ident(b)}" for a, b in zip(lcols, rcols, strict=True)
    )
