"""Undoing a MySQL/MariaDB batch from its binary-log rows (`sql.mysql_binlog_rows`).

One transaction, in three parts:

1. Conflicts: the rows the step left are read (locked, FOR UPDATE) and compared, in `canon`
   form, with the step's after-images: a row changed or deleted since, or back at a key the
   step emptied, is a conflict. A table without a primary key is a multiset (identical rows
   are interchangeable): a row the step added that is no longer there is a conflict that
   force cannot resolve, as on PostgreSQL (`changes.unforceable_report`).
2. The rows are put back by replaying the step's own row events inverted (an insert's row
   deleted, a delete's row inserted, an update's images swapped; newest first) with the
   server's `BINLOG` statement, as a replica applies them: the bytes are the server's own, so
   every type comes back exactly (DECIMAL, DATETIME(6), JSON text, BLOB, BIT, ENUM/SET, FLOAT
   bits), generated columns are computed by the server, and **no trigger fires** (the server
   never runs triggers for replayed row events) and no foreign-key action either (the events
   carry the NO_FOREIGN_KEY_CHECKS flag). `force` first puts the step's after-image back on
   each conflicting row, then replays: those rows end at their before-images too.
3. The foreign keys the undo touched are checked before COMMIT; an undo that would break one
   is refused, forced or not.

Replaying rows needs the BINLOG REPLAY privilege (MariaDB) or SUPER (MySQL).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pymysql
import sqlalchemy as sa

from goex_tools.domains.sql.changes import conflict_report, unforceable_report, until_conflict
from goex_tools.domains.sql.databases import resolve
from goex_tools.domains.sql.errors import SqlError
from goex_tools.domains.sql.mysql_binlog import FLOAT, HEADER, Position, canon, new_xid, position
from goex_tools.domains.sql.mysql_capture import (
    BinlogLog,
    BinlogRowsArgs,
    LoggedEvent,
    fate,
    text_of,
)
from goex_tools.errors import CompensationConflict, GoexError, TransientError
from goex_tools.model import JSONDict
from goex_tools.registry import EffectState, UndoContext

STMT_END, NO_FOREIGN_KEY_CHECKS = 0x0001, 0x0002
TYPES = {
    "v1": {"insert": 23, "update": 24, "delete": 25},
    "v2": {"insert": 30, "update": 31, "delete": 32},
}
EVENT_BYTES = 1 << 20  # rows per replayed event, at most
STATEMENT_BYTES = 4 << 20  # events per BINLOG statement, at most (max_allowed_packet: 16 MB+)
CHUNK = 500  # keys per query
UNDO_TRANSACTION = "undo transaction"  # a journal event: the undo's XA id, once prepared
Op = tuple[int, str, list[bytes]]  # table id, operation, row payloads (update: both images)


def restore(args: JSONDict, force: bool, ctx: UndoContext | None = None) -> None:
    """Undo a committed batch's rows in one transaction (the compensation).

    With `ctx`, the undo runs as an XA transaction whose id is noted in the step's journal
    events once prepared, before its commit; an undo finding an earlier one of its own
    committed does nothing (its process died between that commit and the journal's
    `compensated` mark), and one left prepared is committed (it had been decided)."""
    parsed = BinlogRowsArgs.model_validate(args)
    log = _log_of(parsed)
    url = resolve(parsed.database)
    if ctx is not None and _undone_already(url, ctx):
        return
    xid = new_xid() if ctx is not None else None
    with _session(url, xid) as conn:
        conflicts = _undo(conn, log, force)
        if conflicts and not force:
            raise CompensationConflict(conflict_report(conflicts))
        if ctx is None or xid is None:
            conn.commit()
            return
        start = position(conn)
        with conn.cursor() as cur:
            cur.execute(f"XA END '{xid}'")
            cur.execute(f"XA PREPARE '{xid}'")
        ctx.journal.note(ctx.step.id, f"{UNDO_TRANSACTION} {xid} {start.file} {start.pos}")
        with conn.cursor() as cur:
            cur.execute(f"XA COMMIT '{xid}'")


def _undone_already(url: str, ctx: UndoContext) -> bool:
    """Did an earlier undo of this step commit? Raises SqlError when nobody can tell."""
    noted = [
        e.detail.removeprefix(UNDO_TRANSACTION).split()
        for e in ctx.journal.events(ctx.step.id)
        if e.detail.startswith(UNDO_TRANSACTION)
    ]
    for xid, file, pos in noted:
        with _session(url, None) as conn, conn.cursor() as cur:
            cur.execute("XA RECOVER")
            left = {text_of(r[3]) for r in cur.fetchall()}
            conn.rollback()
        if xid in left:  # prepared, decided, never committed: finish it
            with _session(url, None) as conn, conn.cursor() as cur:
                conn.rollback()
                conn.autocommit(True)
                cur.execute(f"XA COMMIT '{xid}'")
            return True
        state = fate(url, Position(file=file, pos=int(pos)), xid)
        if state is EffectState.HAPPENED:
            return True
        if state is EffectState.UNKNOWN:
            raise SqlError(
                f"an earlier undo of this step ({xid}) may have committed, and the binary log "
                f"that would say so is gone; check the rows and mark the step by hand"
            )
    return False


def preview(chain: list[JSONDict]) -> list[list[str]]:
    """The conflicts of each undo of `chain` (newest first, one database), tried one after
    another in one transaction that is always rolled back (`until_conflict`)."""
    if not chain:
        return []
    parsed = [BinlogRowsArgs.model_validate(args) for args in chain]

    def undo(args: BinlogRowsArgs) -> list[str]:
        try:
            return _undo(conn, _log_of(args), False)
        except GoexError as exc:
            return [str(exc)]

    with _session(resolve(parsed[0].database)) as conn:
        try:
            return until_conflict(parsed, undo)
        finally:
            conn.rollback()


def _log_of(parsed: BinlogRowsArgs) -> BinlogLog:
    log = parsed.unpacked()
    if log is None:
        raise SqlError(
            "this batch's rows were never read back from the binary log (its process died "
            "first); run `goex recover`, which tells whether it committed"
        )
    return log


@contextmanager
def _session(url: str, xid: str | None = None) -> Iterator[Any]:
    """A pymysql connection in a transaction (XA `xid`, if given), TIMESTAMPs in UTC (as
    the binary log's)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        raw = engine.raw_connection()
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise TransientError(f"database connection failed: {type(exc.orig).__name__}") from None
    conn: Any = raw.driver_connection
    try:
        conn.autocommit(False)
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(f"XA START '{xid}'" if xid else "START TRANSACTION")
        yield conn
    except pymysql.err.OperationalError as exc:
        _abandon(conn, xid)
        raise TransientError(f"database connection failed: {exc.args[-1]}") from None
    except BaseException:
        _abandon(conn, xid)
        raise
    finally:
        raw.close()
        engine.dispose()


def _abandon(conn: Any, xid: str | None) -> None:
    """Roll back whatever the session holds (an XA transaction in any state)."""
    try:
        if xid is None:
            conn.rollback()
            return
        with conn.cursor() as cur:
            with suppress(pymysql.err.MySQLError):  # already ended or prepared
                cur.execute(f"XA END '{xid}'")
            cur.execute(f"XA ROLLBACK '{xid}'")
    except pymysql.err.MySQLError:
        pass  # the connection is gone: the server rolls back what was not prepared


def _undo(conn: Any, log: BinlogLog, force: bool) -> list[str]:
    """Check, replay and verify inside the caller's transaction; returns the conflicts (then,
    unless `force`, nothing was written)."""
    tables = {tid: _Table.load(conn, log, tid) for tid in {e.table for e in log.events}}
    conflicts: list[str] = []
    resets: list[Op] = []
    for tid, table in tables.items():
        events = [e for e in log.events if e.table == tid]
        found, reset = table.check(conn, events, force)
        conflicts += found
        resets += reset
    if conflicts and not force:
        return conflicts
    _replay(conn, log, tables, resets + _inverted(log))
    _check_foreign_keys(conn, log, tables)
    return conflicts


class _Table:
    """A table the step changed, as it is now: its columns (as the step logged them) and key."""

    def __init__(
        self, tid: int, schema: str, name: str, columns: list[str], types: list[int], key: list[int]
    ) -> None:
        self.tid = tid
        self.schema = schema
        self.name = name
        self.quoted = f"{_q(schema)}.{_q(name)}"
        self.columns = columns
        self.types = types
        self.key = key  # positions of the primary key in `columns`

    @classmethod
    def load(cls, conn: Any, log: BinlogLog, tid: int) -> _Table:
        logged = log.tables[tid]
        with conn.cursor() as cur:
            cur.execute(
                "SELECT column_name, column_key FROM information_schema.columns WHERE "
                "table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (logged.schema_, logged.table),
            )
            facts = cur.fetchall()
        if not facts:
            raise SqlError(
                f"table {logged.schema_}.{logged.table} no longer exists; its rows cannot be "
                f"restored"
            )
        names = [str(f[0]) for f in facts]
        if names != logged.columns:
            raise SqlError(
                f"table {logged.schema_}.{logged.table} has other columns than when the step "
                f"ran ({', '.join(names)} now, {', '.join(logged.columns)} then); its rows "
                f"cannot be restored"
            )
        key = [i for i, f in enumerate(facts) if f[1] == "PRI"]
        return cls(tid, logged.schema_, logged.table, names, logged.types, key)

    def label(self, image: list[Any]) -> str:
        if self.key:
            return (
                "(" + ", ".join(f"{self.columns[i]}={_shown(image[i])!r}" for i in self.key) + ")"
            )
        return (
            "("
            + ", ".join(f"{c}={_shown(v)!r}" for c, v in zip(self.columns, image, strict=True))
            + ")"
        )

    def check(
        self, conn: Any, events: list[LoggedEvent], force: bool
    ) -> tuple[list[str], list[Op]]:
        """The conflicts of this table, and (forced) the operations that first put the step's
        after-images back on the conflicting rows."""
        if not self.key:
            return self._check_multiset(conn, events, force), []
        expected: dict[tuple[str, ...], tuple[list[Any] | None, bytes]] = {}
        for event in events:
            for before_b, after_b, old, new in event.rows:
                if old is not None and (new is None or self._key(old) != self._key(new)):
                    expected[self._key(old)] = (None, _raw(before_b))
                if new is not None:
                    expected[self._key(new)] = (new, _raw(after_b))
        now = self._current(conn, list(expected))
        conflicts: list[str] = []
        resets: list[Op] = []
        for key, (image, raw) in expected.items():
            found = now.get(key)
            if image is None and found is not None:
                conflicts.append(f"{self.name} row {self.label(found)} exists again since the step")
                resets.append((self.tid, "delete", [raw]))
            elif image is not None and found is None:
                conflicts.append(f"{self.name} row {self.label(image)} was deleted since the step")
                resets.append((self.tid, "insert", [raw]))
            elif image is not None and found != image:
                conflicts.append(f"{self.name} row {self.label(image)} was changed since the step")
                resets += [(self.tid, "delete", [raw]), (self.tid, "insert", [raw])]
        return conflicts, resets if force else []

    def _key(self, image: list[Any]) -> tuple[str, ...]:
        return tuple(json.dumps(image[i]) for i in self.key)

    def _select(self) -> str:
        cols = ", ".join(
            f"({_q(c)} + 0e0)" if t == FLOAT else _q(c)
            for c, t in zip(self.columns, self.types, strict=True)
        )
        return f"SELECT {cols} FROM {self.quoted}"

    def _current(self, conn: Any, keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[Any]]:
        """The rows at these keys now, locked, in canon form."""
        found: dict[tuple[str, ...], list[Any]] = {}
        cols = ", ".join(_q(self.columns[i]) for i in self.key)
        one = "(" + ", ".join(["%s"] * len(self.key)) + ")"
        with conn.cursor() as cur:
            for at in range(0, len(keys), CHUNK):
                chunk = keys[at : at + CHUNK]
                params = [param(json.loads(v)) for key in chunk for v in key]
                cur.execute(
                    f"{self._select()} WHERE ({cols}) IN ({', '.join([one] * len(chunk))}) "
                    f"FOR UPDATE",
                    params,
                )
                for row in cur.fetchall():
                    image = self._canon(row)
                    found[self._key(image)] = image
        return found

    def _canon(self, row: tuple[Any, ...]) -> list[Any]:
        return [canon(t, v) for t, v in zip(self.types, row, strict=True)]

    def _check_multiset(self, conn: Any, events: list[LoggedEvent], force: bool) -> list[str]:
        """A table without a primary key: every row the step added must still be there (as
        many times as it added it)."""
        net: Counter[str] = Counter()
        for event in events:
            for _, _, old, new in event.rows:
                if new is not None:
                    net[json.dumps(new)] += 1
                if old is not None:
                    net[json.dumps(old)] -= 1
        wanted = {image: n for image, n in net.items() if n > 0}
        if not wanted:
            return []
        with conn.cursor() as cur:
            cur.execute(f"{self._select()} FOR UPDATE")
            here = Counter(json.dumps(self._canon(row)) for row in cur.fetchall())
        problems = [
            f"{self.name} row {self.label(json.loads(image))} was changed or deleted since the step"
            for image, n in wanted.items()
            if here[image] < n
        ]
        if problems and force:
            raise SqlError(unforceable_report(problems))
        return problems


def _inverted(log: BinlogLog) -> list[Op]:
    """The step's row events undone: newest first, each row's inverse."""
    ops: list[Op] = []
    for event in reversed(log.events):
        for before_b, after_b, _, _ in reversed(event.rows):
            if event.op == "insert":
                ops.append((event.table, "delete", [_raw(after_b)]))
            elif event.op == "delete":
                ops.append((event.table, "insert", [_raw(before_b)]))
            else:
                ops.append((event.table, "update", [_raw(after_b) + _raw(before_b)]))
    return ops


def _replay(conn: Any, log: BinlogLog, tables: dict[int, _Table], ops: list[Op]) -> None:
    """Apply `ops` as row events through BINLOG statements (see the module docstring)."""
    if not ops:
        return
    heads = _heads(log, tables)
    events: list[tuple[int, bytes]] = []
    for tid, op, rows in _grouped(ops):
        events.append((tid, _event(heads[tid, op], rows, log.checksum)))
    statements: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for tid, event in events:
        if statements[-1] and size + len(event) > STATEMENT_BYTES:
            statements.append([])
            size = 0
        statements[-1].append((tid, event))
        size += len(event)
    fde = base64.b64encode(base64.b64decode(log.fde, validate=True)).decode()  # no quotes
    with conn.cursor() as cur:
        cur.execute(f"BINLOG '{fde}'")
        for statement in statements:
            used = sorted({tid for tid, _ in statement})
            maps = [base64.b64decode(log.tables[tid].map) for tid in used]
            last = bytearray(statement[-1][1])
            last[HEADER + 6] |= STMT_END  # the applier closes the tables at the statement's end
            if log.checksum:
                struct.pack_into("<I", last, len(last) - 4, zlib.crc32(bytes(last[:-4])))
            body = b"".join([*maps, *(e for _, e in statement[:-1]), bytes(last)])
            try:
                cur.execute(f"BINLOG '{base64.b64encode(body).decode()}'")
            except pymysql.err.MySQLError as exc:
                raise SqlError(_replay_error(exc)) from None


def _replay_error(exc: pymysql.err.MySQLError) -> str:
    code = exc.args[0] if exc.args else None
    if code in (1227, 1044, 1045):  # access denied
        return (
            "replaying rows needs the BINLOG REPLAY privilege (MariaDB) or SUPER (MySQL): "
            f"{exc.args[-1]}"
        )
    return f"the rows could not be put back: {exc.args[-1]}; nothing was undone"


def _grouped(ops: list[Op]) -> Iterator[Op]:
    """Consecutive operations of one kind on one table, as events of at most EVENT_BYTES."""
    current: Op | None = None
    size = 0
    for tid, op, rows in ops:
        if current is not None and (current[0], current[1]) == (tid, op) and size < EVENT_BYTES:
            current[2].extend(rows)
            size += sum(len(r) for r in rows)
            continue
        if current is not None:
            yield current
        current = (tid, op, list(rows))
        size = sum(len(r) for r in rows)
    if current is not None:
        yield current


def _heads(log: BinlogLog, tables: dict[int, _Table]) -> dict[tuple[int, str], bytes]:
    """Each table's rows-event header (up to the first row) for each operation, made from one
    the step logged: same table id and column bitmaps, the type changed."""
    heads: dict[tuple[int, str], bytes] = {}
    for event in log.events:
        if any(key[0] == event.table for key in heads):
            continue
        head = base64.b64decode(event.head)
        width = (len(tables[event.table].columns) + 7) // 8
        family = "v2" if head[4] in TYPES["v2"].values() else "v1"
        single = head[:-width] if event.op == "update" else head
        for op in ("insert", "update", "delete"):
            made = bytearray(single + single[-width:] if op == "update" else single)
            made[4] = TYPES[family][op]
            flags = struct.unpack_from("<H", made, HEADER + 6)[0]
            struct.pack_into("<H", made, HEADER + 6, (flags & ~STMT_END) | NO_FOREIGN_KEY_CHECKS)
            heads[event.table, op] = bytes(made)
    return heads


def _event(head: bytes, rows: list[bytes], checksum: bool) -> bytes:
    made = bytearray(head + b"".join(rows))
    struct.pack_into("<I", made, 9, len(made) + (4 if checksum else 0))
    if checksum:
        made += struct.pack("<I", zlib.crc32(bytes(made)))
    return bytes(made)


def _check_foreign_keys(conn: Any, log: BinlogLog, tables: dict[int, _Table]) -> None:
    """Triggers and foreign-key checks were off: refuse (even forced) to leave a broken
    foreign key among the rows the undo restored or removed."""
    restored: dict[int, list[list[Any]]] = {}
    removed: dict[int, list[list[Any]]] = {}
    for event in log.events:
        for _, _, old, new in event.rows:
            if old is not None:
                restored.setdefault(event.table, []).append(old)
            if new is not None:
                removed.setdefault(event.table, []).append(new)
    broken: list[str] = []
    with conn.cursor() as cur:
        for tid, table in tables.items():
            for name, cols, parent, refs in _foreign_keys(cur, table, child=True):
                values = _distinct(table, restored.get(tid, []), cols)
                broken += _probe_keys(cur, values, parent, refs, None, name, "has no parent")
            for name, cols, child, refs in _foreign_keys(cur, table, child=False):
                values = _distinct(table, removed.get(tid, []), cols)
                broken += _probe_keys(
                    cur, values, table.quoted, cols, (child, refs), name, "is still referenced"
                )
    if broken:
        raise SqlError(
            "the undo would break a foreign key, so it was not applied (force cannot override "
            "this): " + "; ".join(broken[:5])
        )


def _foreign_keys(
    cur: Any, table: _Table, *, child: bool
) -> list[tuple[str, list[str], str, list[str]]]:
    """(constraint, columns here, the other table, its columns): the table's own foreign keys
    (`child`) or those onto it."""
    side = "table" if child else "referenced_table"
    cur.execute(
        "SELECT constraint_name, table_schema, table_name, column_name, referenced_table_schema, "
        "referenced_table_name, referenced_column_name FROM information_schema.key_column_usage "
        f"WHERE {side}_schema = %s AND {side}_name = %s AND referenced_table_name IS NOT NULL "
        "ORDER BY constraint_name, ordinal_position",
        (table.schema, table.name),
    )
    found: dict[tuple[str, str, str], tuple[list[str], list[str]]] = {}
    for name, sch, tbl, col, rsch, rtbl, rcol in cur.fetchall():
        other = (rsch, rtbl) if child else (sch, tbl)
        entry = found.setdefault((name, *other), ([], []))
        entry[0].append(col if child else rcol)
        entry[1].append(rcol if child else col)
    return [
        (name, here, f"{_q(s)}.{_q(t)}", there) for (name, s, t), (here, there) in found.items()
    ]


def _distinct(table: _Table, images: list[list[Any]], cols: list[str]) -> list[tuple[Any, ...]]:
    at = [table.columns.index(c) for c in cols]
    values = {tuple(json.dumps(image[i]) for i in at) for image in images}
    return [tuple(param(json.loads(v)) for v in value) for value in values if "null" not in value]


def _probe_keys(
    cur: Any,
    values: list[tuple[Any, ...]],
    target: str,
    cols: list[str],
    referrer: tuple[str, list[str]] | None,
    name: str,
    what: str,
) -> list[str]:
    """The values (of `cols`) not found in `target` (a child's parent); with `referrer`,
    those not found in `target` that rows of the referrer still hold."""
    broken: list[str] = []
    width = len(cols)
    for at in range(0, len(values), CHUNK):
        chunk = values[at : at + CHUNK]
        rows = " UNION ALL ".join(
            "SELECT " + ", ".join(f"%s AS v{i}" for i in range(width)) for _ in chunk
        )
        match = " AND ".join(f"t.{_q(c)} = v.v{i}" for i, c in enumerate(cols))
        sql = (
            f"SELECT * FROM ({rows}) AS v WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {match})"
        )
        if referrer is not None:
            other, other_cols = referrer
            held = " AND ".join(f"r.{_q(c)} = v.v{i}" for i, c in enumerate(other_cols))
            sql += f" AND EXISTS (SELECT 1 FROM {other} r WHERE {held})"
        cur.execute(sql, [v for value in chunk for v in value])
        broken += [f"{name}: {dict(zip(cols, row, strict=True))} {what}" for row in cur.fetchall()]
    return broken


def param(value: Any) -> Any:
    """A `canon` value back as a query parameter."""
    if not isinstance(value, list):
        return value
    tag, data = value
    if tag == "n":
        return decimal.Decimal(data)
    if tag == "t":
        return str(data).replace("T", " ")
    if tag == "b":
        return bytes.fromhex(data)
    if tag in ("f4", "f8"):
        return struct.unpack("<f" if tag == "f4" else "<d", bytes.fromhex(data))[0]
    if tag == "td":
        return datetime.timedelta(microseconds=data)
    if tag == "set":
        return ",".join(data)
    return data


def _shown(value: Any) -> Any:
    return param(value) if isinstance(value, list) else value


def _raw(text: str | None) -> bytes:
    assert text is not None
    return base64.b64decode(text)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
