"""SQLite tables without a primary key: captured by temporary triggers, undone as a multiset.

The session extension keys such tables by rowid (SQLITE_SESSION_OBJCONFIG_ROWID) and records
them wrongly once a batch changes more than about 128 of their rows: one UPDATE statement's
row appears twice (also as an INSERT), or an INSERT is missing (found with apsw 3.54.1 alone:
an undo then deleted rows nobody touched, or left rows behind and reported complete). So the
session records only tables with a primary key, and these tables' rows are logged by TEMP
triggers of goex's own connection (they die with it, nobody else sees them), as whole-row
JSON images (blobs as {"hex": ...}; SQLite writes reals with every digit).

The undo treats such a table as a multiset, as PostgreSQL's does: the rows the step added
are removed and the rows it removed are added back, counted per distinct row, in one
transaction with triggers off. Identical rows are interchangeable, and a rowid is no row's
identity (VACUUM renumbers them): a row to remove that is not there any more is a conflict,
and force cannot resolve it (nothing tells which row was the step's).

A REPLACE that deletes rows to satisfy a UNIQUE index fires no delete trigger (unless
recursive triggers are on), so tables with a unique index are counted before and after: a
count the log does not explain fails the batch.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

import apsw
from pydantic import BaseModel

from goex_tools.domains.sql.changes import SAMPLE_ROWS, unforceable_report
from goex_tools.domains.sql.errors import SqlError
from goex_tools.domains.sql.quoting import concat, ident, literal

LOG = "goex_keyless"
Operation = Literal["insert", "update", "delete"]

KEYLESS = """SELECT l.name FROM pragma_table_list AS l WHERE l.schema = 'main'
AND l.type = 'table' AND NOT l.wr AND l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
AND NOT EXISTS (SELECT 1 FROM pragma_table_info(l.name) AS c WHERE c.pk > 0)"""

RUNS = f"""SELECT tbl, op, count(*),
       CASE WHEN op <> 'insert' THEN json_group_array(json(old)) END,
       CASE WHEN op <> 'delete' THEN json_group_array(json(new)) END
FROM (SELECT *, seq - row_number() OVER (PARTITION BY tbl, op ORDER BY seq) AS run
      FROM temp.{LOG}) GROUP BY tbl, op, run ORDER BY min(seq)"""

SAMPLE = f"""SELECT tbl, op, old, new FROM (
    SELECT *, row_number() OVER (PARTITION BY tbl ORDER BY seq) AS n FROM temp.{LOG})
WHERE n <= {SAMPLE_ROWS} ORDER BY seq"""


class KeylessRun(BaseModel):
    """Consecutive events of one kind on one table without a primary key: the rows before
    (None for inserts) and after (None for deletes), each a JSON array of rows."""

    table: str
    columns: list[str]
    op: Operation
    count: int
    old: str | None = None
    new: str | None = None


class Capture:
    """The temporary log and triggers of one capturing transaction (already begun)."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.columns = {name: stored_columns(conn, name) for (name,) in conn.execute(KEYLESS)}
        self._counted = {t: _count(conn, t) for t in self.columns if _has_unique_index(conn, t)}
        self._runs: list[KeylessRun] | None = None
        if not self.columns:
            return
        statements = [f"CREATE TEMP TABLE {LOG} (seq INTEGER PRIMARY KEY, tbl, op, old, new)"]
        for n, (table, columns) in enumerate(self.columns.items()):
            name, quoted = literal(table), ident(table)
            new = f"json_array({image_sql(columns, 'NEW')})"
            old = f"json_array({image_sql(columns, 'OLD')})"
            statements += [
                f"CREATE TEMP TRIGGER goex_keyless_i{n} AFTER INSERT ON main.{quoted} BEGIN "
                f"INSERT INTO temp.{LOG} (tbl, op, new) VALUES ({name}, 'insert', {new}); END",
                f"CREATE TEMP TRIGGER goex_keyless_u{n} AFTER UPDATE ON main.{quoted} BEGIN "
                f"INSERT INTO temp.{LOG} (tbl, op, old, new) VALUES ({name}, 'update', {old}, "
                f"{new}); END",
                f"CREATE TEMP TRIGGER goex_keyless_d{n} AFTER DELETE ON main.{quoted} BEGIN "
                f"INSERT INTO temp.{LOG} (tbl, op, old) VALUES ({name}, 'delete', {old}); END",
            ]
        conn.execute(";\n".join(statements))

    def runs(self) -> list[KeylessRun]:
        """The log as runs (after the batch); raises SqlError if a table's row count says a
        row was deleted without a trigger firing (see the module)."""
        if self._runs is None:
            self._runs = []
            if self.columns:
                self._runs = [
                    KeylessRun(table=t, columns=self.columns[t], op=op, count=n, old=old, new=new)
                    for t, op, n, old, new in self.conn.execute(RUNS)
                ]
            self._check_counts()
        return self._runs

    def counts(self) -> Counter[tuple[str, Operation]]:
        found: Counter[tuple[str, Operation]] = Counter()
        for run in self.runs():
            found[(run.table, run.op)] += run.count
        return found

    def sample(self) -> list[tuple[str, Operation, tuple[Any, Any]]]:
        """The first events of each table: (table, op, (row before, row after))."""
        if not self.columns:
            return []
        return [(t, op, (_row(old), _row(new))) for t, op, old, new in self.conn.execute(SAMPLE)]

    def _check_counts(self) -> None:
        assert self._runs is not None
        moved = Counter[str]()
        for run in self._runs:
            moved[run.table] += {"insert": run.count, "delete": -run.count}.get(run.op, 0)
        wrong = [t for t, n in self._counted.items() if _count(self.conn, t) != n + moved[t]]
        if wrong:
            raise SqlError(
                f"rows of {', '.join(wrong)} (no primary key) were removed without a trigger "
                f"firing (REPLACE over a UNIQUE index), so they were not recorded; the batch "
                f"was rolled back, nothing changed"
            )


def undo(
    conn: apsw.Connection,
    runs: list[KeylessRun],
    force: bool,
    after: dict[str, list[list[Any]]] | None = None,
) -> list[str]:
    """Undo the runs (inside the caller's transaction); returns the conflicts, changing
    nothing of a table that has one. Raises SqlError for a conflict under `force`. A table
    whose rows are counted as before the step (`after`: the counts the step left, see
    `counts`) is not undone again: that is a conflict too (the caller may find the whole
    step undone already)."""
    conflicts: list[str] = []
    for table, its in _by_table(runs).items():
        if (
            after is not None
            and table in after
            and state(conn, table, its, after[table]) == ("before")
        ):
            conflicts.append(f"{table}: its rows are as they were before the step already")
            continue
        _, missing = _removals(conn, table, its)
        conflicts += [f"{table} row {v} was changed or deleted since the step" for v in missing]
        if not missing:
            _apply(conn, table, its)
    if conflicts and force:
        raise SqlError(unforceable_report(conflicts))
    return conflicts


def evidence(conn: apsw.Connection, runs: list[KeylessRun]) -> tuple[int, int]:
    """(distinct rows an undo must remove, how many of them are missing): whether the rows
    the step left are there. An undo that only adds rows back tells nothing."""
    found = [_removals(conn, table, its) for table, its in _by_table(runs).items()]
    return sum(g for g, _ in found), sum(len(m) for _, m in found)


def counts(conn: apsw.Connection, runs: list[KeylessRun]) -> dict[str, list[list[Any]]]:
    """Per table, [row image, net rows the undo removes, rows with that image now] for every
    image the step's net change involves (taken right after the batch: the step's state)."""
    return {table: _counted(conn, table, its) for table, its in _by_table(runs).items()}


def state(
    conn: apsw.Connection, table: str, runs: list[KeylessRun], after: list[list[Any]]
) -> Literal["after", "before", "changed"]:
    """Are the table's rows (by the counts of the images the step changed) as the step left
    them, as they were before it (an undo already ran), or neither?"""
    now = {str(v): int(c) for v, _, c in _counted(conn, table, runs)}
    if all(now.get(str(v)) == c for v, _, c in after):
        return "after"
    if all(now.get(str(v)) == c - n for v, n, c in after):
        return "before"
    return "changed"


def _counted(conn: apsw.Connection, table: str, runs: list[KeylessRun]) -> list[list[Any]]:
    now = image_sql(runs[0].columns, "t")
    found = conn.execute(
        _net(table, runs[0].columns)
        + f"SELECT net.v, net.n, count(x.v) FROM net LEFT JOIN (SELECT json_array({now}) AS v "
        f"FROM main.{ident(table)} AS t) AS x ON x.v = net.v GROUP BY net.v, net.n",
        _binds(runs),
    ).fetchall()
    return [[str(v), int(str(n)), int(str(c))] for v, n, c in found]


def _by_table(runs: list[KeylessRun]) -> dict[str, list[KeylessRun]]:
    tables: dict[str, list[KeylessRun]] = {}
    for run in runs:
        tables.setdefault(run.table, []).append(run)
    return tables


def _net(table: str, columns: list[str]) -> str:
    """CTEs: `net` (distinct row image, how many the undo removes (> 0) or adds (< 0)) and
    `here` (the table's rows with such an image, numbered per image)."""
    now = image_sql(columns, "t")
    return (
        "WITH img(v, d) AS (SELECT value, 1 FROM json_each(:news) "
        "UNION ALL SELECT value, -1 FROM json_each(:olds)), "
        "net(v, n) AS (SELECT v, sum(d) FROM img GROUP BY v HAVING sum(d) <> 0), "
        "here(id, v, k) AS (SELECT id, v, row_number() OVER (PARTITION BY v) FROM "
        f"(SELECT t.rowid AS id, json_array({now}) AS v FROM main.{ident(table)} AS t) "
        "WHERE v IN (SELECT v FROM net WHERE n > 0)) "
    )


def _binds(runs: list[KeylessRun]) -> dict[str, str]:
    return {"news": concat([r.new for r in runs]), "olds": concat([r.old for r in runs])}


def _removals(conn: apsw.Connection, table: str, runs: list[KeylessRun]) -> tuple[int, list[str]]:
    """(distinct rows to remove, those not there in the numbers the step left them)."""
    found = conn.execute(
        _net(table, runs[0].columns)
        + "SELECT net.v, count(here.id) >= net.n FROM net LEFT JOIN here "
        "ON here.v = net.v AND here.k <= net.n WHERE net.n > 0 GROUP BY net.v, net.n",
        _binds(runs),
    ).fetchall()
    return len(found), [str(v) for v, there in found if not there]


def _apply(conn: apsw.Connection, table: str, runs: list[KeylessRun]) -> None:
    columns = runs[0].columns
    net, binds, quoted = _net(table, columns), _binds(runs), ident(table)
    conn.execute(
        net + f"DELETE FROM main.{quoted} WHERE rowid IN "
        "(SELECT here.id FROM here JOIN net USING (v) WHERE here.k <= net.n)",
        binds,
    )
    values = ", ".join(
        f"CASE WHEN json_type(net.v, '$[{i}]') = 'object' "
        f"THEN unhex(net.v ->> '$[{i}].hex') ELSE net.v ->> {i} END"
        for i in range(len(columns))
    )
    conn.execute(
        net + ", copies(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM copies "
        "WHERE k < (SELECT coalesce(max(-n), 0) FROM net)) "
        f"INSERT INTO main.{quoted} ({', '.join(ident(c) for c in columns)}) "
        f"SELECT {values} FROM net JOIN copies ON copies.k <= -net.n WHERE net.n < 0",
        binds,
    )


def stored_columns(conn: apsw.Connection, table: str) -> list[str]:
    """The columns a row's values are stored in (not generated ones)."""
    return [
        str(row[1])
        for row in conn.execute("SELECT * FROM pragma_table_xinfo(?)", (table,))
        if row[6] == 0
    ]


def image_sql(columns: list[str], alias: str) -> str:
    """The values of row `alias` as `json_array` arguments: blobs as {"hex": ...}."""
    return ", ".join(
        f"CASE WHEN typeof({alias}.{ident(c)}) = 'blob' "
        f"THEN json_object('hex', hex({alias}.{ident(c)})) ELSE {alias}.{ident(c)} END"
        for c in columns
    )


def _row(image: str | None) -> tuple[Any, ...] | None:
    if image is None:
        return None
    return tuple(bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for v in json.loads(image))


def _has_unique_index(conn: apsw.Connection, table: str) -> bool:
    return any(row[2] for row in conn.execute("SELECT * FROM pragma_index_list(?)", (table,)))


def _count(conn: apsw.Connection, table: str) -> int:
    (count,) = conn.execute(f"SELECT count(*) FROM main.{ident(table)}").fetchall()[0]
    return int(str(count))
