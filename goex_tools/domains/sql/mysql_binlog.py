"""MySQL/MariaDB: a transaction's row changes, read back from the server's own binary log.

With `binlog_format=ROW` and `binlog_row_image=FULL` the server writes every row a
transaction changed (rows written by triggers and stored functions included) with its whole
before- and after-image; `mysql-replication` reads those events over the replication
protocol. A batch runs as an XA transaction: `XA PREPARE` writes its events to the binary log
while it can still be rolled back, so goex reads exactly that transaction's events (found by
its own XA id, from a binlog position taken inside it), journals them, shows them to a
confirm callback, and only then commits. Nothing is committed that was not read back.

Each row is kept twice: as the server's own bytes (what the undo replays, so every type comes
back bit for bit) and decoded, in a canonical form (`canon`) the undo compares the rows found
then with, to tell whether someone changed them since.

Not in the binary log: rows changed by ON DELETE / ON UPDATE actions of foreign keys (InnoDB
runs them below the binlog), so a batch that would trigger one is refused (`cascading`).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import random
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql
import sqlalchemy as sa
from pydantic import BaseModel

from goex_tools.domains.sql.errors import SqlError

XA_PREFIX = "goex-"
# binlog event types (the same numbers on MySQL and MariaDB)
QUERY, TABLE_MAP, FORMAT_DESCRIPTION, XA_PREPARE = 2, 19, 15, 38
WRITE_V1, UPDATE_V1, DELETE_V1, WRITE_V2, UPDATE_V2, DELETE_V2 = 23, 24, 25, 30, 31, 32
OPS = {WRITE_V1: "insert", UPDATE_V1: "update", DELETE_V1: "delete"}
OPS.update({WRITE_V2: "insert", UPDATE_V2: "update", DELETE_V2: "delete"})
MARIADB_GTID, MARIADB_ANNOTATE, MYSQL_GTID, ROWS_QUERY = 162, 160, 33, 29
HARMLESS = {MARIADB_ANNOTATE, ROWS_QUERY, TABLE_MAP, MARIADB_GTID, MYSQL_GTID}
HEADER = 19  # bytes of an event's common header
EMPTY_SET = "empty set"  # pymysqlreplication's NONE_SOURCE.EMPTY_SET


class Position(BaseModel):
    """A place in the server's binary log."""

    file: str
    pos: int


# -- what the server must do for a batch to be undoable -------------------------------------


SETTINGS = """SELECT @@log_bin, @@session.binlog_format, @@session.binlog_row_image,
    @@session.sql_log_bin, @@global.binlog_row_metadata, VERSION()"""
READ = ("REPLICATION SLAVE",)  # reading events over the replication protocol
POSITION = ("BINLOG MONITOR", "REPLICATION CLIENT")  # SHOW MASTER STATUS
REPLAY = ("BINLOG REPLAY",)  # the undo replays rows with BINLOG (MariaDB 10.5.2+)


def capture_problem(conn: Any) -> str | None:
    """Why the batches of this session cannot be undone from the binary log, naming the
    setting or privilege missing (None when they can). `conn`: a DBAPI connection."""
    with conn.cursor() as cur:
        try:
            cur.execute(SETTINGS)
        except pymysql.err.MySQLError:  # no binlog_row_metadata: a server too old
            return "the server is too old to log column metadata (binlog_row_metadata)"
        log_bin, fmt, image, log_session, metadata, version = cur.fetchone()
        missing = []
        if str(log_bin) != "1":
            missing.append("the server writes no binary log (start it with log_bin)")
        if str(fmt).upper() != "ROW":
            missing.append(f"binlog_format is {fmt}, not ROW")
        if str(image).upper() != "FULL":
            missing.append(f"binlog_row_image is {image}, not FULL")
        if str(log_session) != "1":
            missing.append("sql_log_bin is off in this session")
        if str(metadata).upper() != "FULL":
            missing.append(f"binlog_row_metadata is {metadata}, not FULL")
        if missing:
            return "; ".join(missing)
        held = _global_privileges(cur)
        lacking = [
            f"{' or '.join(names)} (to {why})"
            for names, why in (
                (READ, "read the binary log"),
                (POSITION, "see the binary log's position"),
                (REPLAY if "mariadb" in str(version).lower() else ("SUPER",), "replay rows"),
            )
            if not held & {"ALL PRIVILEGES", "SUPER", *names}
        ]
    if lacking:
        return "this user lacks the privilege " + ", ".join(lacking)
    return None


def _global_privileges(cur: Any) -> set[str]:
    """The privileges SHOW GRANTS gives this session on *.*."""
    cur.execute("SHOW GRANTS")
    held: set[str] = set()
    for (line,) in cur.fetchall():
        text = str(line)
        if text.upper().startswith("GRANT ") and " ON *.* TO " in text.upper():
            listed = text[len("GRANT ") : text.upper().index(" ON *.* TO ")]
            held |= {p.strip().upper() for p in listed.split(",")}
    return held


def position(conn: Any) -> Position:
    """The end of the binary log now (inside a transaction: where its events will follow)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4 renamed it
            cur.execute("SHOW BINARY LOG STATUS")
        found = cur.fetchone()
    if found is None:
        raise SqlError("the server writes no binary log (SHOW MASTER STATUS is empty)")
    return Position(file=str(found[0]), pos=int(found[1]))


def new_xid() -> str:
    return XA_PREFIX + "".join(random.choices("0123456789abcdef", k=24))


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One row change: the server's bytes of each image, and their decoded values."""

    before: bytes | None
    after: bytes | None
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass
class RowsEvent:
    """One rows event: its table, operation, header bytes (up to the first row) and rows."""

    table_id: int
    op: str
    head: bytes
    rows: list[Row] = field(default_factory=list)


@dataclass
class TableMap:
    schema: str
    table: str
    raw: bytes
    columns: list[str]
    types: list[int]


@dataclass
class ReadBack:
    """A transaction's events as the binary log holds them."""

    fde: bytes  # the log's format description event: the replay of its rows needs it first
    checksum: bool
    maps: dict[int, TableMap]
    events: list[RowsEvent]


def connect_args(url: str) -> dict[str, Any]:
    """pymysql's connection settings for a SQLAlchemy URL."""
    parsed = sa.engine.make_url(url)
    engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool)
    try:
        _, kwargs = engine.dialect.create_connect_args(parsed)
    finally:
        engine.dispose()
    kwargs.pop("db", None)
    kwargs.pop("database", None)
    kwargs.pop("client_flag", None)
    return dict(kwargs)


def read_transaction(url: str, start: Position, xid: str) -> ReadBack:
    """The row events of the XA transaction `xid`, prepared after `start`.

    Raises SqlError when they cannot all be read (purged, an event goex cannot read, an
    image that is not whole), saying why.
    """
    fde, checksum = b"", True
    maps: dict[int, TableMap] = {}
    events: list[RowsEvent] = []
    strange: list[int] = []  # events inside the transaction that goex cannot read
    others = False  # inside another session's transaction (MariaDB names XA ids up front)
    for kind, event, raw in _stream(url, start):
        if kind == FORMAT_DESCRIPTION:
            fde, checksum = raw, _checksummed(raw)
        elif kind in (MARIADB_GTID, MYSQL_GTID):
            maps, events, strange = {}, [], []  # a transaction starts
            others = kind == MARIADB_GTID and _gtid_xid(raw) not in (None, xid)
        elif others:
            continue  # its rows are not decoded
        elif kind == TABLE_MAP:
            maps[event.table_id] = _table_map(event, raw)
        elif kind in OPS:
            events.append(_rows(event, raw, maps))
        elif kind == XA_PREPARE and event.xid == xid:
            if strange:
                raise SqlError(
                    f"the binary log holds events of type {strange} in this batch, which goex "
                    f"cannot read (compressed or partial row events?), so it cannot be undone"
                )
            return ReadBack(fde=fde, checksum=checksum, maps=maps, events=events)
        elif kind == QUERY and event.query.upper().startswith("XA END"):
            continue
        elif kind not in HARMLESS:
            strange.append(kind)
    raise SqlError(
        f"the binary log holds no prepared transaction {xid} after {start.file}:{start.pos}"
    )


FL_GROUP_COMMIT_ID, FL_XA = 0x02, 0x40 | 0x80  # MariaDB GTID flags: commit id, XA prepared


def _gtid_xid(raw: bytes) -> str | None:
    """The XA id a MariaDB GTID event names (None: not an XA transaction's)."""
    at = HEADER + 8 + 4  # sequence number, domain
    flags = raw[at]
    at += 1
    if flags & FL_GROUP_COMMIT_ID:
        at += 8
    if not flags & FL_XA:
        return None
    gtrid, bqual = raw[at + 4], raw[at + 5]
    return raw[at + 6 : at + 6 + gtrid + bqual].decode("utf-8", "replace")


def _stream(url: str, start: Position) -> Iterator[tuple[int, Any, bytes]]:
    """(event type, decoded event, the event's bytes) from `start` to the log's end now."""
    from pymysqlreplication import BinLogStreamReader

    stream = BinLogStreamReader(
        connection_settings=connect_args(url),
        server_id=random.randint(1 << 20, (1 << 31) - 1),  # a replica id nobody else uses
        log_file=start.file,
        log_pos=start.pos,
        resume_stream=True,
        blocking=False,
        use_column_name_cache=True,
    )
    try:
        while True:
            try:
                with warnings.catch_warnings():  # the reader connects with pymysql's old `db`
                    warnings.simplefilter("ignore", DeprecationWarning)
                    event = stream.fetchone()
            except pymysql.err.MySQLError as exc:
                raise SqlError(f"reading the binary log failed: {exc.args[-1]}") from None
            if event is None:
                return
            raw = bytes(event.packet.packet._data[1:])  # the event as logged (no OK byte)
            yield event.packet.event_type, event, raw
    finally:
        stream.close()


def _checksummed(fde: bytes) -> bool:
    """Whether the log's events end with a CRC32 (the format description's last byte
    before its own checksum names the algorithm)."""
    return fde[-5] == 1


def _table_map(event: Any, raw: bytes) -> TableMap:
    return TableMap(
        schema=event.schema,
        table=event.table,
        raw=raw,
        columns=[c.name for c in event.columns],
        types=[c.type for c in event.columns],
    )


def _rows(event: Any, raw: bytes, maps: dict[int, TableMap]) -> RowsEvent:
    """Split a rows event into its rows' images (bytes and decoded values). Raises SqlError
    for an image that is not whole (a session that set binlog_row_image = MINIMAL)."""
    if event.table_id not in maps:
        raise SqlError("a rows event without its table map in the binary log")
    packet = event.packet
    ncols = event.number_of_columns
    bitmaps = [event.columns_present_bitmap]
    if event.event_type in (UPDATE_V1, UPDATE_V2):
        bitmaps.append(event.columns_present_bitmap2)
    for bitmap in bitmaps:
        if any(not (bitmap[i // 8] >> (i % 8)) & 1 for i in range(ncols)):
            name = maps[event.table_id]
            raise SqlError(
                f"the binary log holds only some columns of {name.schema}.{name.table}'s rows "
                f"(binlog_row_image is not FULL for this batch), so it cannot be undone"
            )
    start = packet.read_bytes
    found = RowsEvent(table_id=event.table_id, op=OPS[event.event_type], head=raw[: HEADER + start])
    end = event.event_size  # the body's size, without header and checksum
    while packet.read_bytes + 1 < end:
        at = packet.read_bytes
        first = _values(event, bitmaps[0])
        mid = packet.read_bytes
        image = raw[HEADER + at : HEADER + mid]
        if len(bitmaps) == 2:
            second = _values(event, bitmaps[1])
            after = raw[HEADER + mid : HEADER + packet.read_bytes]
            found.rows.append(Row(before=image, after=after, old=first, new=second))
        elif found.op == "insert":
            found.rows.append(Row(before=None, after=image, old=None, new=first))
        else:
            found.rows.append(Row(before=image, after=None, old=first, new=None))
    return found


def _values(event: Any, bitmap: bytes) -> dict[str, Any]:
    """One image's values; an empty SET is an empty set (the decoder says None, as for NULL)."""
    values: dict[str, Any] = event._read_column_data(bitmap)
    for name, why in event._get_none_sources(values).items():
        if why == EMPTY_SET:
            values[name] = set()
    return values


# -- values, compared and shown ---------------------------------------------------------------

# binlog column types (pymysqlreplication.constants.FIELD_TYPE)
FLOAT, DOUBLE, YEAR, BIT, JSON, ENUM, SET, STRING = 4, 5, 13, 16, 245, 247, 248, 254


def canon(ftype: int, value: Any) -> Any:
    """A value in one comparable JSON form, whether it was decoded from the binary log or
    read with SQL: floats by their bits (the binary log holds FLOAT as 4 bytes), BIT as a
    number, SET as a sorted list, bytes as hex, times in ISO form."""
    if value is None or value == b"":
        return None if value is None else ""  # the decoder gives an empty BLOB as ''
    if ftype == FLOAT:
        return ["f4", struct.pack("<f", float(value) or 0.0).hex()]  # SQL reads -0 as 0
    if ftype == DOUBLE:
        return ["f8", struct.pack("<d", float(value) or 0.0).hex()]
    if ftype == BIT:
        if isinstance(value, str):  # the binary log's decoder gives '0101'
            return ["bit", int(value, 2) if value else 0]
        if isinstance(value, bytes):
            return ["bit", int.from_bytes(value, "big")]
        return ["bit", int(value)]
    if ftype == SET:
        items = value if isinstance(value, set | frozenset | list) else str(value).split(",")
        return ["set", sorted(str(i) for i in items if str(i))]
    if ftype == JSON and not isinstance(value, str | bytes):  # MySQL's binary JSON
        return ["json", json.dumps(value, sort_keys=True, default=str)]
    if ftype == JSON:
        try:
            return ["json", json.dumps(json.loads(value), sort_keys=True)]
        except ValueError:
            return value if isinstance(value, str) else ["b", value.hex()]
    if ftype == STRING and isinstance(value, bytes):  # BINARY(n): the log drops the padding
        return ["b", value.rstrip(b"\0").hex()]
    if ftype == YEAR and value == 1900:  # the decoder adds 1900 to the stored 0 of YEAR 0000
        return 0
    return plain(value)


def plain(value: Any) -> Any:
    """A decoded value as JSON data that says what it was (for the journal and display)."""
    if isinstance(value, bytes | bytearray):
        return ["b", bytes(value).hex()]
    if isinstance(value, decimal.Decimal):
        return ["n", str(value)]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return ["t", value.isoformat()]
    if isinstance(value, datetime.timedelta):
        return ["td", value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds]
    if isinstance(value, set | frozenset):
        return ["set", sorted(str(v) for v in value)]
    if isinstance(value, float):
        return ["f8", struct.pack("<d", value).hex()]
    return value


def shown(ftype: int, value: Any) -> Any:
    """A decoded value as a confirm callback sees it: Python's own types where JSON has
    none (Decimal, datetime, bytes), BIT as a number, SET as a comma list."""
    if value is None:
        return None
    if ftype == BIT and isinstance(value, str):
        return int(value, 2) if value else 0
    if isinstance(value, set | frozenset):
        return ",".join(sorted(str(v) for v in value))
    return value


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
