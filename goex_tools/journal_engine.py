"""Opening the journal's database: what a URL may name, and an engine per dialect.

- SQLite: a WAL-mode file (its path made absolute, so a later `chdir` cannot switch files).
  Writers take the write lock up front (BEGIN IMMEDIATE) instead of failing on a read->write
  upgrade; reads never take it. A read-only journal is opened with `mode=ro`: it creates
  nothing.
- PostgreSQL (and other servers): connect and statement timeouts, and a watchdog that cuts a
  connection kept longer than the timeout, because a server that stopped answering (SIGSTOP,
  a frozen VM) still has its kernel acknowledge every packet: no socket option notices it.
  The schema is created under an advisory lock (several processes opening a fresh journal).

Every fault here becomes a `JournalError` in `journal_faults`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.request import pathname2url

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from goex_tools.errors import JournalError, JournalNotFound, JournalUnavailable

Mode = Literal["create", "open", "read"]
"""`create` the journal if missing (agents); `open` an existing one to write (rollback,
recover); `read` an existing one read-only (runs, show, diff)."""

DEFAULT_TIMEOUT = 30.0
TIMEOUT_ENV = "GOEX_JOURNAL_TIMEOUT"
READ_OPTION = "goex_read"  # execution option: a read transaction (no write lock on SQLite)
SCHEMA_LOCK = 0x676F6578  # "goex": the advisory lock serialising schema creation
PING_AFTER = 5.0  # seconds a pooled server connection may sit idle before it is pinged
_LAST_USED = "goex_last_used"


def default_timeout() -> float:
    """`GOEX_JOURNAL_TIMEOUT` (seconds) if set, else 30 s."""
    value = os.environ.get(TIMEOUT_ENV)
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        raise JournalError(f"{TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise JournalError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {value!r}")
    return seconds


@dataclass(frozen=True)
class Target:
    """What a journal URL names: the URL to connect to, and for SQLite the file."""

    url: sa.URL
    path: Path | None  # the SQLite file (absolute); None for a server or an in-memory database

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()


def target(url: str) -> Target:
    """Parse a journal URL; a clear JournalError for anything that is not one."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise JournalError(
            f"not a journal URL: {url!r} (expected e.g. sqlite:///path/to/journal.db or "
            f"postgresql+psycopg://user@host/database)"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return Target(parsed, None)
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return Target(parsed, None)
    path = Path(os.path.abspath(database))
    return Target(parsed.set(database=str(path)), path)


def make_engine(where: Target, *, mode: Mode, durable: bool, timeout: float) -> Engine:
    """An engine for the journal `where` names (it does not connect yet)."""
    if where.dialect == "sqlite":
        return _sqlite_engine(where, mode=mode, durable=durable, timeout=timeout)
    return _server_engine(where, mode=mode, timeout=timeout)


def _sqlite_engine(where: Target, *, mode: Mode, durable: bool, timeout: float) -> Engine:
    path = where.path
    if path is not None:
        _check_sqlite_file(path, mode)
    if mode == "read" and path is not None:
        uri = f"file:{pathname2url(str(path))}?mode=ro"
        engine = _create(
            where,
            creator=lambda: _sqlite3_connect(uri, timeout),
        )
    else:
        engine = _create(where, connect_args={"timeout": timeout, "check_same_thread": False})
    synchronous = "FULL" if durable else "NORMAL"

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite: BEGIN is ours to issue (below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if mode == "create":  # WAL mode persists in the file: set once, by its creator
            cursor.execute("PRAGMA journal_mode=WAL")
        if mode != "read":
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers queue on the write lock up front; readers read a WAL snapshot, lock-free.
        reading = mode == "read" or conn.get_execution_options().get(READ_OPTION)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def _sqlite3_connect(uri: str, timeout: float) -> Any:
    import sqlite3

    return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)


def _check_sqlite_file(path: Path, mode: Mode) -> None:
    """A journal that must exist exists; a new one gets its directory."""
    if path.is_dir():
        raise JournalNotFound(f"no goex journal at {path}: it is a directory")
    if mode != "create":
        if not path.exists():
            raise JournalNotFound(f"no goex journal at {path} (no such file)")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalUnavailable(
            f"cannot create a goex journal at {path}: {exc.strerror or exc} "
            f"({exc.filename or path.parent}); choose another place with GOEX_JOURNAL_URL"
        ) from None


def _server_engine(where: Target, *, mode: Mode, timeout: float) -> Engine:
    connect_args: dict[str, Any] = {}
    if where.dialect == "postgresql":
        options = [f"-c statement_timeout={int(timeout * 1000)}"]
        if mode == "read":
            options.append("-c default_transaction_read_only=on")
        connect_args = {
            "connect_timeout": max(2, round(timeout)),  # libpq's minimum is 2 s
            "options": " ".join(options),
        }
    engine = _create(where, connect_args=connect_args)
    _watch(engine, timeout)
    return engine


def _create(where: Target, **kwargs: Any) -> Engine:
    try:
        return sa.create_engine(where.url, **kwargs)
    except sa.exc.NoSuchModuleError:
        raise JournalError(
            f"unknown database kind {where.url.drivername!r} in the journal URL "
            f"(SQLAlchemy has no such dialect or driver)"
        ) from None
    except ImportError as exc:
        raise JournalError(
            f"the journal URL needs the Python package {exc.name or 'of its driver'!r}, "
            f"which is not installed (e.g. `pip install goex-tools[postgres]`)"
        ) from None


def create_schema(engine: Engine, metadata: sa.MetaData) -> None:
    """Create the journal's tables if missing; serialised between processes on PostgreSQL."""
    with engine.begin() as conn:
        create_tables(conn, metadata)


def create_tables(conn: Connection, metadata: sa.MetaData) -> None:
    """Create `metadata`'s missing tables in the transaction `conn` is in, serialised between
    processes on PostgreSQL (concurrent CREATE TABLEs of one name collide there). Indexes
    listed in `metadata.info["added_indexes"]` are made on tables that predate them."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
    metadata.create_all(conn)
    for index in metadata.info.get("added_indexes", ()):
        index.create(conn, checkfirst=True)


def missing_tables(engine: Engine, metadata: sa.MetaData) -> list[str]:
    """The journal tables a database lacks (all of them: it is not a goex journal)."""
    with engine.connect().execution_options(**{READ_OPTION: True}) as conn:
        inspector = sa.inspect(conn)
        return [name for name in metadata.tables if not inspector.has_table(name)]


# The watchdog: a checked-out server connection older than the timeout is cut.


def _watch(engine: Engine, timeout: float) -> None:
    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        _watchdog.arm(record, dbapi_conn, timeout)
        started = time.monotonic()
        if started - record.info.get(_LAST_USED, 0.0) < PING_AFTER:
            return  # used a moment ago: a ping would cost a round trip for nothing
        try:
            engine.dialect.do_ping(dbapi_conn)  # a pooled connection may have died
        except Exception as exc:
            if time.monotonic() - started >= timeout:
                _watchdog.disarm(record)
                raise  # the server stopped answering: no new connection would fare better
            raise sa.exc.DisconnectionError(str(exc)) from exc  # the pool reconnects once

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        _watchdog.disarm(record)
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    for event in ("invalidate", "soft_invalidate", "close", "detach"):
        sa.event.listen(engine, event, lambda *a, **_: _watchdog.disarm(a[1]))


class _Watchdog:
    """One daemon thread cutting (shutdown) server connections held past their deadline."""

    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, Any]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, record: Any, dbapi_conn: Any, timeout: float) -> None:
        with self._wake:
            self._armed[id(record)] = (time.monotonic() + timeout, dbapi_conn)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="goex-journal-watchdog")
                self._thread.daemon = True
                self._thread.start()
            self._wake.notify()

    def disarm(self, record: Any) -> None:
        with self._wake:
            self._armed.pop(id(record), None)

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                for key, (deadline, dbapi_conn) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[key]
                        _cut(dbapi_conn)
                deadlines = [deadline for deadline, _ in self._armed.values()]
                self._wake.wait(timeout=min(deadlines) - now if deadlines else None)


def _cut(dbapi_conn: Any) -> None:
    """Shut the connection's socket down: the thread waiting on it gets an error at once."""
    if getattr(dbapi_conn, "closed", True):
        return
    try:
        fd = dbapi_conn.fileno()
        sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)  # a duplicate descriptor
    except Exception:  # closed meanwhile, or no socket: nothing to cut
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


_watchdog = _Watchdog()
