"""Undoing a PostgreSQL row log (`sql.restore_rows`): one transaction, table by table.

The undo runs with `session_replication_role = replica`: user triggers and foreign-key
actions are off, so it restores rows, not side effects, and no table's undo changes another
table; the foreign keys it touched are checked before COMMIT (`postgres_keys`). Tables are
therefore undone one at a time, each with a few set-based statements, whatever order the
log interleaved them in (an UPDATE of 3,503 rows with an audit trigger logs 7,006
alternating events; replaying them one by one took 18 s).

- A table with a primary key whose rows each appear once in the log: its inserted rows are
  deleted, its updated rows set back and its deleted rows inserted, each guarded by the row
  being exactly as the step left it (compared as this session's text of the row). Anything
  else (a row changed since, a key updated, a row changed twice, a unique value in the way)
  rolls that table back to a savepoint and replays its events newest first, row by row,
  which reports conflicts and forces them.
- A table without a primary key is a multiset of rows (identical rows are interchangeable):
  the undo removes the rows the step added and adds the rows it removed, counted per
  distinct row; a row to remove that is not there (changed or deleted since) is a conflict,
  which force cannot resolve (nothing tells which row was the step's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from goex_tools.domains.sql import postgres_keys
from goex_tools.domains.sql.changes import (
    Operation,
    conflict_report,
    unforceable_report,
    until_conflict,
)
from goex_tools.domains.sql.databases import resolve
from goex_tools.domains.sql.errors import SqlError
from goex_tools.domains.sql.postgres import LoggedRows, RestoreRowsArgs, engine_for
from goex_tools.domains.sql.quoting import concat, ident
from goex_tools.errors import CompensationConflict, GoexError, TransientError
from goex_tools.model import JSONDict
from goex_tools.registry import EffectState, UndoContext

SET_BASED = 2  # events of a table from which its undo is set-based
UNDO_TRANSACTION = "undo transaction"  # a journal event: the undo's id, before its COMMIT


def restore(args: JSONDict, force: bool, ctx: UndoContext | None = None) -> None:
    """Undo the row log of a committed batch in one transaction (the compensation).

    With `ctx`, the undo transaction's id is noted in the step's journal events before its
    COMMIT, and an undo finding an earlier one of its own committed does nothing: its process
    died between that COMMIT and the journal's `compensated` mark (PostgreSQL remembers every
    transaction's fate, `pg_xact_status`)."""
    parsed = RestoreRowsArgs.model_validate(args)
    url = resolve(parsed.database)
    if ctx is not None and _undone_already(url, ctx):
        return
    with _transient_errors(), engine_for(url).begin() as conn:
        conflicts = _undo(conn, parsed, force)
        if conflicts and not force:
            raise CompensationConflict(conflict_report(conflicts))
        if ctx is not None:  # before COMMIT: a crash after it leaves the id to ask about
            txid = conn.exec_driver_sql("SELECT pg_current_xact_id()").scalar()
            ctx.journal.note(ctx.step.id, f"{UNDO_TRANSACTION} {txid}")


def _undone_already(url: str, ctx: UndoContext) -> bool:
    """Did an earlier undo of this step commit? Raises SqlError while one is in progress."""
    noted = [
        e.detail.removeprefix(UNDO_TRANSACTION).strip()
        for e in ctx.journal.events(ctx.step.id)
        if e.detail.startswith(UNDO_TRANSACTION)
    ]
    if not noted:
        return False
    with engine_for(url).connect() as conn:
        states = [
            conn.execute(
                sa.text("SELECT pg_xact_status(CAST(:txid AS xid8))"), {"txid": txid}
            ).scalar()
            for txid in noted
        ]
    if "in progress" in states:
        raise SqlError(
            "an earlier undo of this step is still in progress on the server (its process "
            "died or hangs); run the rollback again once that transaction has ended"
        )
    return "committed" in states


def preview(chain: list[JSONDict]) -> list[list[str]]:
    """The conflicts of each undo of `chain` (the steps' arguments, newest first, one
    database), tried one after another in one transaction that is always rolled back: an
    older step's undo meets the rows as the newer ones' undos leave them (`until_conflict`)."""
    if not chain:
        return []
    parsed = [RestoreRowsArgs.model_validate(args) for args in chain]

    def undo(args: RestoreRowsArgs) -> list[str]:
        try:
            return _undo(conn, args, False)
        except GoexError as exc:  # a foreign key the undo would break
            return [str(exc)]

    with _transient_errors(), engine_for(resolve(parsed[0].database)).connect() as conn:
        trial = conn.begin()
        try:
            return until_conflict(parsed, undo)
        finally:
            trial.rollback()


def _undo(conn: Connection, parsed: RestoreRowsArgs, force: bool) -> list[str]:
    """Undo the row log inside the caller's transaction, table by table; returns the
    conflicts (then, unless `force`, the rows are left half-undone: roll back). Raises
    SqlError for a foreign key the undo would break."""
    _replica_role(conn)
    rows = parsed.unpacked()
    runs: dict[tuple[str, str], list[LoggedRows]] = {}
    for run in rows:
        runs.setdefault((run.schema_, run.table), []).append(run)
    tables = {key: _Table.load(conn, *key) for key in runs}
    conflicts: list[str] = []
    for key, table_runs in runs.items():
        conflicts += tables[key].undo(conn, table_runs, force)
    if conflicts and not force:
        return conflicts
    _check_foreign_keys(conn, rows, tables)
    return conflicts


def probe(args: JSONDict) -> EffectState:
    """Did the batch commit? PostgreSQL remembers its transaction's fate."""
    parsed = RestoreRowsArgs.model_validate(args)
    if parsed.txid is None:
        return EffectState.NOT_HAPPENED  # the row log is journaled before COMMIT
    with engine_for(resolve(parsed.database)).connect() as conn:
        status = conn.execute(
            sa.text("SELECT pg_xact_status(CAST(:txid AS xid8))"), {"txid": parsed.txid}
        ).scalar()
    return {"committed": EffectState.HAPPENED, "aborted": EffectState.NOT_HAPPENED}.get(
        str(status), EffectState.UNKNOWN
    )


def _check_foreign_keys(
    conn: Connection, rows: list[LoggedRows], tables: dict[tuple[str, str], _Table]
) -> None:
    """Triggers were off during the undo: refuse (even forced) to leave a broken foreign key."""
    touched = postgres_keys.touched_by(
        (tables[(r.schema_, r.table)].name, r.op, r.old, r.new) for r in rows
    )
    for table in tables.values():
        if table.name in touched:
            touched[table.name].key = table.key
    broken = postgres_keys.violations(conn, touched)
    if broken:
        raise SqlError(
            "the undo would break a foreign key, so it was not applied (force cannot override "
            "this): " + "; ".join(broken)
        )


class _Unclean(Exception):
    """A table's rows are not all as the step left them: replay its events one by one."""


class _Table:
    """The catalog facts an undo needs: writable columns, key, identity columns."""

    def __init__(self, name: str, columns: list[str], key: list[str], always: list[str]) -> None:
        self.name = name
        self.columns = columns  # every column an INSERT may write
        self.key = key
        self.identity = bool(always)  # GENERATED ALWAYS AS IDENTITY: insert with OVERRIDING
        self.updatable = [c for c in columns if c not in always]

    @classmethod
    def load(cls, conn: Connection, schema: str, table: str) -> _Table:
        name = f"{ident(schema)}.{ident(table)}"
        facts = conn.execute(
            sa.text(
                "SELECT a.attname, a.attidentity, "
                "  coalesce(a.attnum = ANY (i.indkey), false) AS in_key "
                "FROM pg_attribute a "
                "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
                "WHERE a.attrelid = CAST(:name AS regclass) AND a.attnum > 0 "
                "  AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum"
            ),
            {"name": name},
        ).all()
        if not facts:
            raise SqlError(f"table {schema}.{table} no longer exists; its rows cannot be restored")
        return cls(
            name,
            [str(f[0]) for f in facts],
            [str(f[0]) for f in facts if f[2]],
            [str(f[0]) for f in facts if f[1] == "a"],
        )

    def undo(self, conn: Connection, runs: list[LoggedRows], force: bool) -> list[str]:
        """Undo this table's events (in log order); returns the conflicts (see the module)."""
        if not self.key:
            return self._undo_multiset(conn, runs, force)
        if sum(r.count for r in runs) >= SET_BASED:
            try:
                with conn.begin_nested():
                    self._undo_set(conn, runs)
                return []
            except (_Unclean, sa.exc.IntegrityError):
                pass  # rolled back to the savepoint: one by one, which reports or forces
        return [
            problem
            for run in reversed(runs)
            for old, new in reversed(_pairs(conn, run))
            if (problem := self._undo_event(conn, run.op, old, new, force))
        ]

    def _undo_set(self, conn: Connection, runs: list[LoggedRows]) -> None:
        """Every row once in the log, each as the step left it: a statement per operation.
        Raises _Unclean (or IntegrityError) otherwise."""
        images = {
            (op, side): concat([getattr(r, side) for r in runs if r.op == op])
            for op, side in (
                ("insert", "new"),
                ("update", "old"),
                ("update", "new"),
                ("delete", "old"),
            )
        }
        counts = {op: sum(r.count for r in runs if r.op == op) for op in ("insert", "update")}
        every = concat([images["insert", "new"], images["update", "old"], images["delete", "old"]])
        key = ", ".join(f"r.{ident(c)}" for c in self.key)
        once = conn.execute(
            sa.text(
                f"SELECT count(*) = count(DISTINCT ROW({key})) FROM "
                f"json_populate_recordset(NULL::{self.name}, CAST(:every AS json)) AS r"
            ),
            {"every": every},
        ).scalar()
        if not once:
            raise _Unclean
        on = " AND ".join(f"t.{ident(c)} = r.{ident(c)}" for c in self.key)
        if counts["insert"]:
            gone = conn.execute(
                sa.text(
                    f"DELETE FROM {self.name} AS t USING json_array_elements(CAST(:news AS "
                    f"json)) AS x(img) CROSS JOIN LATERAL json_populate_record(NULL::"
                    f"{self.name}, x.img) AS r WHERE {on} AND t::text = r::text"
                ),
                {"news": images["insert", "new"]},
            )
            if gone.rowcount != counts["insert"]:
                raise _Unclean
        if counts["update"]:
            cols = ", ".join(ident(c) for c in self.updatable)
            back = ", ".join(f"(p.o).{ident(c)}" for c in self.updatable)
            at = " AND ".join(f"t.{ident(c)} = (p.r).{ident(c)}" for c in self.key)
            kept = " AND ".join(f"(p.o).{ident(c)} = (p.r).{ident(c)}" for c in self.key)
            done = conn.execute(
                sa.text(
                    f"UPDATE {self.name} AS t SET ({cols}) = ROW({back}) FROM ("
                    f"SELECT json_populate_record(NULL::{self.name}, a.img) AS o, "
                    f"json_populate_record(NULL::{self.name}, b.img) AS r "
                    f"FROM json_array_elements(CAST(:olds AS json)) WITH ORDINALITY AS a(img, n) "
                    f"JOIN json_array_elements(CAST(:news AS json)) WITH ORDINALITY AS b(img, n) "
                    f"USING (n)) AS p WHERE {at} AND {kept} AND t::text = (p.r)::text"
                ),
                {"olds": images["update", "old"], "news": images["update", "new"]},
            )
            if done.rowcount != counts["update"]:
                raise _Unclean  # a row changed since, or its key was updated by the step
        if images["delete", "old"] != "[]":
            self._insert(conn, images["delete", "old"])

    def _undo_multiset(self, conn: Connection, runs: list[LoggedRows], force: bool) -> list[str]:
        """A table without a primary key: remove the rows the step added and add the rows it
        removed, counted per distinct row (compared as this session's text of the row), in
        one statement that changes nothing when a row to remove is missing."""
        news = concat([r.new for r in runs])
        olds = concat([r.old for r in runs])
        cols = ", ".join(ident(c) for c in self.columns)
        values = ", ".join(f"(net.r).{ident(c)}" for c in self.columns)
        overriding = " OVERRIDING SYSTEM VALUE" if self.identity else ""
        missing = conn.execute(
            sa.text(
                f"""WITH img AS (
    SELECT r, 1 AS d FROM json_populate_recordset(NULL::{self.name}, CAST(:news AS json)) AS r
    UNION ALL
    SELECT r, -1 FROM json_populate_recordset(NULL::{self.name}, CAST(:olds AS json)) AS r
), net AS (
    SELECT r::text AS v, (array_agg(r))[1] AS r, sum(d) AS n FROM img
    GROUP BY r::text HAVING sum(d) <> 0
), here AS (
    SELECT t.ctid, t::text AS v, row_number() OVER (PARTITION BY t::text) AS k
    FROM {self.name} AS t WHERE t::text IN (SELECT v FROM net WHERE n > 0)
), taken AS (
    SELECT here.ctid FROM here JOIN net USING (v) WHERE here.k <= net.n
), missing AS (
    SELECT net.v FROM net LEFT JOIN here ON here.v = net.v AND here.k <= net.n
    WHERE net.n > 0 GROUP BY net.v, net.n HAVING count(here.ctid) < net.n
), gone AS (
    DELETE FROM {self.name} AS t WHERE t.ctid IN (SELECT ctid FROM taken)
      AND NOT EXISTS (SELECT 1 FROM missing) RETURNING 1
), added AS (
    INSERT INTO {self.name} ({cols}){overriding} SELECT {values}
    FROM net CROSS JOIN LATERAL generate_series(1, -net.n::int) AS copies
    WHERE net.n < 0 AND NOT EXISTS (SELECT 1 FROM missing) RETURNING 1
)
SELECT v, (SELECT count(*) FROM gone), (SELECT count(*) FROM taken) FROM missing
UNION ALL SELECT NULL, (SELECT count(*) FROM gone), (SELECT count(*) FROM taken)"""
            ),
            {"news": news, "olds": olds},
        ).all()
        problems = [
            f"{self.name} row {v} was changed or deleted since the step" for v, *_ in missing if v
        ]
        if problems and force:
            raise SqlError(unforceable_report(problems))
        gone, taken = missing[-1][1], missing[-1][2]
        if not problems and gone != taken:  # changed by someone while the undo ran
            raise CompensationConflict(
                f"{self.name}: {taken - gone} row(s) changed by someone else while the undo ran"
            )
        return problems

    def _undo_event(
        self, conn: Connection, op: Operation, old: str | None, new: str | None, force: bool
    ) -> str | None:
        """Undo one logged row event of a table with a key; returns a conflict, if any."""
        if op == "delete":
            assert old is not None
            found = self._locate(conn, old)
            problem = None
            if found is not None:
                problem = f"{self.name} row {self._key_of(old)} exists again since the step"
                if force:
                    self._delete(conn, found[0])
            if problem is None or force:
                self._insert(conn, f"[{old}]")
            return problem
        assert new is not None
        found = self._locate(conn, new)
        if found is not None and found[1]:
            problem = None
        elif found is None:
            problem = f"{self.name} row {self._key_of(new)} was deleted since the step"
        else:
            problem = f"{self.name} row {self._key_of(new)} was changed since the step"
        if problem is not None and not force:
            return problem
        if op == "insert":
            if found is not None:
                self._delete(conn, found[0])
        elif found is not None:
            assert old is not None
            self._update(conn, found[0], old)
        else:
            assert old is not None
            self._insert(conn, f"[{old}]")
        return problem

    def _locate(self, conn: Connection, image: str) -> tuple[str, bool] | None:
        """(ctid, equals the image) of the row with the image's key, locked. Rows are
        compared as this session writes them (json text as stored, float bits)."""
        on = " AND ".join(f"t.{ident(c)} = r.{ident(c)}" for c in self.key)
        found = conn.execute(
            sa.text(
                f"SELECT t.ctid::text, t::text = r::text FROM {self.name} AS t, "
                f"json_populate_record(NULL::{self.name}, CAST(:img AS json)) AS r "
                f"WHERE {on} LIMIT 1 FOR UPDATE OF t"
            ),
            {"img": image},
        ).first()
        return (str(found[0]), bool(found[1])) if found is not None else None

    def _insert(self, conn: Connection, images: str) -> None:
        """Insert the rows of a JSON array of images, exactly (identity values included)."""
        cols = ", ".join(ident(c) for c in self.columns)
        overriding = " OVERRIDING SYSTEM VALUE" if self.identity else ""
        conn.execute(
            sa.text(
                f"INSERT INTO {self.name} ({cols}){overriding} SELECT {cols} FROM "
                f"json_populate_recordset(NULL::{self.name}, CAST(:imgs AS json))"
            ),
            {"imgs": images},
        )

    def _update(self, conn: Connection, ctid: str, image: str) -> None:
        cols = ", ".join(ident(c) for c in self.updatable)
        conn.execute(
            sa.text(
                f"UPDATE {self.name} AS t SET ({cols}) = ROW(r.*) FROM (SELECT {cols} FROM "
                f"json_populate_record(NULL::{self.name}, CAST(:img AS json))) AS r "
                f"WHERE t.ctid = CAST(:ctid AS tid)"
            ),
            {"img": image, "ctid": ctid},
        )

    def _delete(self, conn: Connection, ctid: str) -> None:
        conn.execute(
            sa.text(f"DELETE FROM {self.name} WHERE ctid = CAST(:ctid AS tid)"), {"ctid": ctid}
        )

    def _key_of(self, image: str) -> str:
        values: dict[str, Any] = json.loads(image)
        return "(" + ", ".join(f"{c}={values.get(c)!r}" for c in self.key) + ")"


def _replica_role(conn: Connection) -> None:
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql("SET LOCAL extra_float_digits = 3")  # rows compared as text
    except sa.exc.DBAPIError as exc:
        raise SqlError(
            "restoring rows exactly needs triggers and foreign-key actions off during the "
            "undo (SET session_replication_role = replica): grant it to this role "
            "(superuser, or on PostgreSQL 15+ GRANT SET ON PARAMETER session_replication_role)"
            f": {type(exc.orig).__name__}"
        ) from None


@contextmanager
def _transient_errors() -> Iterator[None]:
    """A dropped connection is worth retrying: the undo transaction did not commit."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            raise TransientError(f"database connection failed: {type(exc.orig).__name__}") from None
        raise


def _pairs(conn: Connection, run: LoggedRows) -> list[tuple[str | None, str | None]]:
    """The (old, new) images of a run's events, each as its exact text."""
    olds, news = (_elements(conn, images, run.count) for images in (run.old, run.new))
    return list(zip(olds, news, strict=True))


def _elements(conn: Connection, images: str | None, count: int) -> list[str | None]:
    """The images of a JSON array, each as its exact text (no float or numeric rounding)."""
    if images is None:
        return [None] * count
    found = conn.execute(
        sa.text(
            "SELECT value::text FROM json_array_elements(CAST(:imgs AS json)) "
            "WITH ORDINALITY AS e(value, n) ORDER BY n"
        ),
        {"imgs": images},
    )
    return list(found.scalars())
