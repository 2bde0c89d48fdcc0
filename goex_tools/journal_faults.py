"""Journal faults as goex errors: which journal, what failed, and what a person can do.

A disk that is full, a lock held too long, an I/O error, a server that refuses connections or
stopped answering: the driver says it in its own words (an `OperationalError` with a
traceback). Here it becomes a `JournalError` naming the journal and the way out. An error
raised before an effect means the effect did not run: the runtime adds which action that was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from goex_tools.errors import JournalDetached, JournalError, JournalNotFound, JournalUnavailable

_ADVICE = "point GOEX_JOURNAL_URL (or --journal) at a journal that works"


@contextmanager
def translated(
    where: str,
    doing: str,
    timeout: float,
    path: Path | None = None,
    driver_error: type[Exception] = sqlite3.Error,
) -> Iterator[None]:
    """Run the block; a database fault in it is raised as a JournalError about `where` (the
    SQLite file `path`, if it is one). `driver_error`: the DBAPI's base error, for writes
    made on the driver's connection itself."""
    started = time.monotonic()
    try:
        yield
    except (
        sa.exc.DBAPIError,
        driver_error,
        sa.exc.TimeoutError,
        sa.exc.DisconnectionError,
    ) as exc:
        waited = time.monotonic() - started
        raise fault(exc, where, doing, timeout, waited, path) from exc


def fault(
    exc: Exception,
    where: str,
    doing: str,
    timeout: float,
    waited: float = 0.0,
    path: Path | None = None,
) -> JournalError:
    """The goex error for a driver error met while `doing` something with journal `where`."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    lower = str(orig).lower()
    head = f"goex journal {where}: cannot {doing}"
    if "does not exist" in lower and "database" in lower and "relation" not in lower:
        return JournalNotFound(
            f"no goex journal at {where}: {text} (goex creates tables, not databases: "
            f"create the database first)"
        )
    if "file is not a database" in lower or "file is encrypted" in lower:
        return JournalNotFound(f"no goex journal at {where}: the file is not a SQLite database")
    if "no such table" in lower or ("relation" in lower and "does not exist" in lower):
        return JournalDetached(
            f"{head}: its goex tables are gone (dropped, or the database was replaced); "
            f"what was journaled there is lost"
        )
    if "disk is full" in lower or "no space left" in lower or "could not extend" in lower:
        return JournalUnavailable(
            f"{head}: the disk is full ({text}). Free space there, or {_ADVICE}"
        )
    if "locked" in lower or "lock timeout" in lower:
        return JournalUnavailable(
            f"{head}: another process held its lock for more than {timeout:g} s ({text}). "
            f"Wait for that process to finish, or raise GOEX_JOURNAL_TIMEOUT"
        )
    if "statement timeout" in lower or waited >= timeout:
        return JournalUnavailable(
            f"{head}: no answer within {timeout:g} s ({text}). Is the server overloaded or "
            f"stopped? Raise GOEX_JOURNAL_TIMEOUT if it is only slow"
        )
    if "i/o error" in lower:
        return JournalUnavailable(f"{head}: a disk I/O error ({text}). Check the disk")
    if "readonly" in lower or "read-only" in lower or _read_only_fs(path):
        return JournalUnavailable(
            f"{head}: it is read-only ({text}). Make it writable, or {_ADVICE}"
        )
    if "unable to open" in lower:
        return JournalUnavailable(
            f"{head}: the file cannot be opened ({text}). Check that its directory exists "
            f"and is writable"
        )
    unreachable = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
    if isinstance(exc, unreachable) or type(orig).__name__ in (
        "OperationalError",
        "InterfaceError",
    ):
        return JournalUnavailable(
            f"{head}: the database is unreachable or failed ({text}). Check that its server "
            f"runs and accepts connections, or {_ADVICE}"
        )
    return JournalUnavailable(f"{head}: {text}")


def _read_only_fs(path: Path | None) -> bool:
    """True if the SQLite file's directory is on a file system mounted read-only."""
    if path is None:
        return False
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False
