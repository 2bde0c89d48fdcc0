"""MySQL/MariaDB: a batch as one XA transaction whose rows are read back before it commits.

    XA START -> position of the binary log -> the statements -> XA END, XA PREPARE
    (the server writes the batch's row events to the binary log) -> read them back
    (`mysql_binlog`) -> confirm sees them -> journal them as the undo -> XA COMMIT

The XA id and the position are journaled before XA PREPARE: a prepared transaction outlives
its session, so after a crash `goex recover` finds it (`probe`): still prepared -> rolled
back (it never committed), committed or rolled back -> the binary log says which.

Before anything runs, `problem` says why a batch could not be undone this way (a setting or
privilege missing, a table without transactions, a foreign key whose ON DELETE / ON UPDATE
action would change rows the binary log does not record); the batch is then irreversible,
as it always was here. After XA PREPARE, a batch whose events show such an action at work
(`cascades`) is rolled back, nothing changed.
"""

from __future__ import annotations

from typing import Any

import pymysql
import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter

from goex_tools.domains.sql import mysql, mysql_binlog
from goex_tools.domains.sql.changes import Captured, Operation, RowChange
from goex_tools.domains.sql.databases import DatabaseRef
from goex_tools.domains.sql.errors import SqlError
from goex_tools.domains.sql.mysql_binlog import Position, ReadBack, b64, canon, shown
from goex_tools.domains.sql.postgres import catalog_engine
from goex_tools.domains.sql.quoting import pack, unpack
from goex_tools.domains.sql.results import StatementResult, collect
from goex_tools.domains.sql.statements import Statement
from goex_tools.errors import GoexError
from goex_tools.model import JSONDict
from goex_tools.redaction import UNDO_HELD_A_SECRET, holds_secret
from goex_tools.registry import EffectState

MECHANISM = "mysql-binlog-rows"
KIND = "sql.mysql_binlog_rows"
ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT")
SESSION_LOGS = "SELECT @@session.sql_log_bin, @@session.binlog_format, @@session.binlog_row_image"


class LoggedTable(BaseModel):
    """A table as the binary log mapped it: its map event (bytes, base64) and columns."""

    schema_: str
    table: str
    map: str
    columns: list[str]
    types: list[int]


class LoggedEvent(BaseModel):
    """A rows event: its header bytes up to the first row, and per row the server's bytes of
    the image before and after (base64) and their values in `canon` form."""

    table: int  # the table map's id
    op: Operation
    head: str
    rows: list[tuple[str | None, str | None, list[Any] | None, list[Any] | None]]


class BinlogLog(BaseModel):
    fde: str
    checksum: bool
    tables: dict[int, LoggedTable]
    events: list[LoggedEvent]


class BinlogRowsArgs(BaseModel):
    """Arguments of `sql.mysql_binlog_rows`: a committed batch's row events as the binary
    log holds them (`log`: a `BinlogLog` as JSON, zlib-compressed and base64), found by the
    batch's XA id after `start`. No `log` yet: the batch had not been read back (nothing
    was committed, unless a crash came between; `probe` tells)."""

    database: DatabaseRef
    xid: str | None = None
    start: Position | None = None
    log: str | None = None

    def unpacked(self) -> BinlogLog | None:
        return None if self.log is None else LOG.validate_json(unpack(self.log) or "{}")


LOG = TypeAdapter(BinlogLog)


def problem(url: str, statements: list[Statement]) -> str | None:
    """Why this batch's rows could not be undone from the binary log (None if they can)."""
    for attempt in (1, 2):
        try:
            with catalog_engine(url).connect() as conn:
                why = mysql_binlog.capture_problem(conn.connection.driver_connection)
                if why is None:
                    why = _non_transactional(conn, statements)
                if why is None:
                    why = _cascading_named(conn, statements)
            return why
        except sa.exc.DBAPIError as exc:  # a pooled session the server closed: once more
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _non_transactional(conn: Any, statements: list[Statement]) -> str | None:
    """A table the batch writes whose engine has no transactions (its rows are logged apart
    from the XA transaction, and kept whatever ROLLBACK says); or, when a trigger or stored
    function may write elsewhere, any such table in the server's databases."""
    writes = [s for s in statements if s.kind == "write"]
    written = [
        s.model_copy(update={"tables": [found[0]]}) if (found := mysql.target(s)) else s
        for s in writes
    ]
    tables = mysql.non_transactional(conn, written)
    if tables:
        return f"{', '.join(tables)}: this engine has no transactions"
    if not mysql.uncounted(conn, writes):  # no trigger, stored function or cascade involved
        return None
    other = conn.exec_driver_sql(
        "SELECT CONCAT(table_schema, '.', table_name, ' (', engine, ')') FROM "
        "information_schema.tables WHERE table_type = 'BASE TABLE' AND engine NOT IN "
        "('InnoDB', 'SEQUENCE') AND table_schema NOT IN ('mysql', 'information_schema', "
        "'performance_schema', 'sys') LIMIT 1"
    ).scalar()
    if other is None:
        return None
    return (
        f"a trigger or stored function of the batch may write to {other}, whose engine has "
        f"no transactions (its rows would not be in the batch's transaction)"
    )


def _cascading_named(conn: Any, statements: list[Statement]) -> str | None:
    """A statement deleting (or re-keying) rows of a table whose foreign keys have ON DELETE /
    ON UPDATE actions: those rows' children change below the binary log."""
    for statement in statements:
        if statement.kind != "write":
            continue
        verb, tables = _verb(statement)
        for table in tables:
            for child, rule, action in _actions(conn, table):
                if (verb == "delete" and rule == "delete") or (
                    verb == "update" and rule == "update"
                ):
                    return (
                        f"{statement.sql[:60]!r} may change {child} rows through its foreign "
                        f"key's ON {rule.upper()} {action}, which MySQL/MariaDB do not write "
                        f"to the binary log"
                    )
    return None


def _verb(statement: Statement) -> tuple[str, list[str]]:
    """('delete' | 'update' | 'insert', tables) of a write by its first word; a REPLACE
    deletes, an upsert updates, and anything else counts as an update and a delete."""
    words = statement.sql.lstrip().split(None, 1)
    first = words[0].upper() if words else ""
    if first in ("REPLACE", "DELETE"):
        return "delete", statement.tables
    if first == "INSERT":
        upsert = "ON DUPLICATE KEY" in statement.sql.upper()
        return ("update" if upsert else "insert"), statement.tables
    if first == "UPDATE":
        return "update", statement.tables
    return "both", statement.tables


def _actions(conn: Any, table: str) -> list[tuple[str, str, str]]:
    """(child table, 'delete'/'update', action) of the foreign keys onto `table` that act."""
    schema, _, name = table.rpartition(".")
    rows = conn.execute(
        sa.text(
            "SELECT table_name, delete_rule, update_rule FROM information_schema"
            ".referential_constraints WHERE referenced_table_name = :name AND "
            "unique_constraint_schema = COALESCE(NULLIF(:schema, ''), DATABASE())"
        ),
        {"name": name, "schema": schema},
    ).all()
    found = []
    for child, on_delete, on_update in rows:
        if on_delete in ACTIONS:
            found.append((str(child), "delete", str(on_delete)))
        if on_update in ACTIONS:
            found.append((str(child), "update", str(on_update)))
    return found


class MysqlTransaction:
    """One batch as an XA transaction, read back from the binary log once prepared."""

    def __init__(self, url: str, *, lock_timeout: float | None = None) -> None:
        self.url = url
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)  # a fresh session
        self.catalog = catalog_engine(url)  # goex's own lookups, pooled
        self.raw = self.engine.raw_connection()
        conn: Any = self.raw.driver_connection
        self.conn = conn
        conn.autocommit(True)
        self.state = "none"  # -> active -> prepared -> done
        self.xid = mysql_binlog.new_xid()
        self._read: ReadBack | None = None
        self._schema = ""
        try:
            why = mysql_binlog.capture_problem(self.conn)
            if why is not None:  # changed since the batch was planned
                raise SqlError(f"its rows could not be read back ({why}); nothing was run")
            with self.conn.cursor() as cur:
                if lock_timeout is not None:
                    cur.execute(
                        f"SET SESSION innodb_lock_wait_timeout = {max(1, round(lock_timeout))}"
                    )
                cur.execute("SELECT DATABASE()")
                self._schema = str(cur.fetchone()[0] or "")
                cur.execute(f"XA START '{self.xid}'")
            self.state = "active"
            self.start = mysql_binlog.position(self.conn)
        except BaseException:
            self.rollback()
            self.close()
            raise

    def pending_args(self, ref: DatabaseRef) -> JSONDict:
        """The compensation before the rows are known: enough for `probe` after a crash."""
        return BinlogRowsArgs(database=ref, xid=self.xid, start=self.start).model_dump(mode="json")

    def execute(self, sql: str, limit: int) -> StatementResult:
        """Run one statement; its errors are SQLAlchemy's (as on the other paths)."""
        with self.conn.cursor() as cur:
            try:
                cur.execute(sql)
            except pymysql.err.Error as exc:
                raise sa.exc.DBAPIError.instance(sql, None, exc, pymysql.err.Error) from None
            if cur.description:
                columns = [d[0] for d in cur.description]
                return collect(cur.fetchall(), columns, limit)
            return StatementResult(row_count=cur.rowcount)

    def read_back(self) -> ReadBack:
        """XA END, XA PREPARE, and the batch's events as the binary log holds them."""
        if self._read is None:
            with self.conn.cursor() as cur:
                cur.execute(SESSION_LOGS)  # a stored function may have switched them
                if tuple(str(v).upper() for v in cur.fetchone()) != ("1", "ROW", "FULL"):
                    raise SqlError(
                        "the batch switched its session's binary logging (sql_log_bin, "
                        "binlog_format or binlog_row_image), so its rows cannot all be read "
                        "back; it was rolled back, nothing changed"
                    )
                cur.execute(f"XA END '{self.xid}'")
                self.state = "ended"
                cur.execute(f"XA PREPARE '{self.xid}'")
                self.state = "prepared"
            self._read = mysql_binlog.read_transaction(self.url, self.start, self.xid)
            _refuse_cascades(self.catalog, self._read)
        return self._read

    def changes(self) -> Captured[tuple[int, int]]:
        read = self.read_back()
        events: list[tuple[str, Operation, tuple[int, int]]] = []
        for n, event in enumerate(read.events):
            name = self._name(read.maps[event.table_id])
            op: Operation = event.op  # type: ignore[assignment]
            events.extend((name, op, (n, i)) for i in range(len(event.rows)))
        return Captured(events=events, show=self._show)

    def _name(self, table: mysql_binlog.TableMap) -> str:
        return table.table if table.schema == self._schema else f"{table.schema}.{table.table}"

    def _show(self, event: tuple[str, Operation, tuple[int, int]]) -> RowChange:
        name, op, (n, i) = event
        read = self.read_back()
        logged = read.events[n]
        types = read.maps[logged.table_id].types
        row = logged.rows[i]

        def image(values: dict[str, Any] | None) -> dict[str, Any] | None:
            if values is None:
                return None
            return {c: shown(t, v) for (c, v), t in zip(values.items(), types, strict=False)}

        return RowChange(table=name, op=op, before=image(row.old), after=image(row.new))

    def keyless_tables(self) -> list[str]:
        read = self.read_back()
        used = {e.table_id for e in read.events}
        found = []
        with self.catalog.connect() as conn:
            for table_id in sorted(used):
                table = read.maps[table_id]
                if not _primary_key(conn, table.schema, table.table):
                    found.append(self._name(table))
        return found

    def compensation_args(self, ref: DatabaseRef) -> JSONDict:
        read = self.read_back()
        images = [i for e in read.events for r in e.rows for i in (r.before, r.after) if i]
        log = _log(read)
        if any(holds_secret(i) for i in images) or holds_secret(log):
            return {"unavailable": UNDO_HELD_A_SECRET}  # packed, the journal could not mask it
        return BinlogRowsArgs(
            database=ref, xid=self.xid, start=self.start, log=pack(log)
        ).model_dump(mode="json")

    def commit(self) -> None:
        with self.conn.cursor() as cur:
            if self.state == "active":
                self.read_back()
            cur.execute(f"XA COMMIT '{self.xid}'")
        self.state = "done"

    def rollback(self) -> None:
        try:
            with self.conn.cursor() as cur:
                if self.state == "active":
                    cur.execute(f"XA END '{self.xid}'")
                    self.state = "ended"
                if self.state in ("ended", "prepared"):
                    cur.execute(f"XA ROLLBACK '{self.xid}'")
                    self.state = "done"
        except pymysql.err.MySQLError:
            if self.state == "prepared":  # it outlives this session: never leave it behind
                _rollback_prepared(self.engine, self.xid)
                self.state = "done"

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()


def _log(read: ReadBack) -> str:
    """The events as the journal keeps them (JSON)."""
    used = {e.table_id for e in read.events}
    tables = {
        t: LoggedTable(
            schema_=m.schema, table=m.table, map=b64(m.raw) or "", columns=m.columns, types=m.types
        )
        for t, m in read.maps.items()
        if t in used
    }

    def values(image: dict[str, Any] | None, types: list[int]) -> list[Any] | None:
        if image is None:
            return None
        return [canon(t, v) for v, t in zip(image.values(), types, strict=True)]

    events = [
        LoggedEvent(
            table=e.table_id,
            op=e.op,  # type: ignore[arg-type]
            head=b64(e.head) or "",
            rows=[
                (
                    b64(r.before),
                    b64(r.after),
                    values(r.old, read.maps[e.table_id].types),
                    values(r.new, read.maps[e.table_id].types),
                )
                for r in e.rows
            ],
        )
        for e in read.events
    ]
    log = BinlogLog(fde=b64(read.fde) or "", checksum=read.checksum, tables=tables, events=events)
    return log.model_dump_json()


def _refuse_cascades(engine: sa.Engine, read: ReadBack) -> None:
    """Rows deleted (or re-keyed) in a table whose foreign keys act ON DELETE / ON UPDATE:
    the rows that action changed are not in the binary log, so the batch is refused."""
    touched = {
        (read.maps[e.table_id].schema, read.maps[e.table_id].table, e.op)
        for e in read.events
        if e.op != "insert"
    }
    if not touched:
        return
    with engine.connect() as conn:
        for schema, table, op in sorted(touched):
            for child, rule, action in _actions(conn, f"{schema}.{table}"):
                if (rule == "delete" and op == "delete") or (rule == "update" and op == "update"):
                    raise SqlError(
                        f"the batch {'deleted' if op == 'delete' else 'updated'} rows of "
                        f"{table}, whose foreign key from {child} acts ON {rule.upper()} "
                        f"{action}: MySQL/MariaDB do not write the rows such an action changes "
                        f"to the binary log, so the batch could not be undone; it was rolled "
                        f"back, nothing changed"
                    )


def _primary_key(conn: Any, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        sa.text(
            "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = "
            ":schema AND table_name = :table AND constraint_name = 'PRIMARY' "
            "ORDER BY ordinal_position"
        ),
        {"schema": schema, "table": table},
    ).all()
    return [str(r[0]) for r in rows]


def _rollback_prepared(engine: sa.Engine, xid: str) -> None:
    with engine.connect() as conn:
        conn.connection.driver_connection.autocommit(True)  # type: ignore[union-attr]
        conn.exec_driver_sql(f"XA ROLLBACK '{xid}'")


def probe(args: JSONDict) -> EffectState:
    """Did the batch commit? A prepared transaction left by a crash is rolled back (it
    never committed); otherwise the binary log says whether XA COMMIT followed."""
    parsed = BinlogRowsArgs.model_validate(args)
    if parsed.xid is None or parsed.start is None:
        return EffectState.NOT_HAPPENED  # nothing ran before the XA id was journaled
    from goex_tools.domains.sql.databases import resolve

    url = resolve(parsed.database)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            prepared = {text_of(r[3]) for r in conn.exec_driver_sql("XA RECOVER").all()}
        if parsed.xid in prepared:
            _rollback_prepared(engine, parsed.xid)
            return EffectState.NOT_HAPPENED
    finally:
        engine.dispose()
    return fate(url, parsed.start, parsed.xid)


def fate(url: str, start: Position, xid: str) -> EffectState:
    """What the binary log says became of XA transaction `xid` (not prepared any more)."""
    hexed = xid.encode().hex().upper()
    prepared = False
    try:
        for kind, event, _ in mysql_binlog._stream(url, start):
            if kind == mysql_binlog.XA_PREPARE and event.xid == xid:
                prepared = True
            elif kind == mysql_binlog.QUERY and prepared:
                query = event.query.upper()
                if hexed in query or xid.upper() in query:
                    if query.startswith("XA COMMIT"):
                        return EffectState.HAPPENED
                    if query.startswith("XA ROLLBACK"):
                        return EffectState.NOT_HAPPENED
    except GoexError:
        return EffectState.UNKNOWN  # the log is gone (purged) or unreadable: a person decides
    # never prepared: the session died before XA PREPARE, and the server rolled it back
    return EffectState.UNKNOWN if prepared else EffectState.NOT_HAPPENED


def text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
