"""A batch that waits for itself: a second connection it opened, stuck behind its own locks.

Row capture holds a SHARE ROW EXCLUSIVE lock on every table until COMMIT, and any batch holds
the row locks of what it changed. A function or trigger that writes back into the same
database through dblink or postgres_fdw opens another session, which waits for those locks,
while the batch waits for that session's answer: PostgreSQL sees no deadlock (one of the
waits is on a socket), so both wait for ever. Cancelling the batch would not do: its locks
would go, and the other session's write would then commit behind a step journaled as
failed.

So while a PostgreSQL batch runs, a watcher looks, every half `lock_timeout`, for sessions
that wait longer than `lock_timeout` for a lock this batch holds, while this batch itself
waits on an extension (dblink and postgres_fdw wait that way for their remote session): the
waiting session is the batch's own, and it is cancelled, so its write never happens; the
batch then fails with the error its dblink call raises, and `cancelled` says why. A session
of someone else waiting for the batch is left alone (the batch is working, not waiting).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

WAITING_ON_US = """SELECT w.pid, pg_cancel_backend(w.pid) FROM pg_stat_activity AS w
JOIN pg_locks AS l ON l.pid = w.pid AND NOT l.granted
WHERE CAST(:pid AS int) = ANY (pg_blocking_pids(w.pid))
  AND l.waitstart < clock_timestamp() - make_interval(secs => :timeout)
  AND (SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid) = 'Extension'"""


class LockWatch:
    """Watches one batch's session (by backend pid) until `stop()`."""

    def __init__(self, engine: sa.Engine, pid: int, timeout: float) -> None:
        self.engine = engine
        self.pid = pid
        self.timeout = timeout
        self.cancelled: list[int] = []  # the sessions it cancelled
        self._stopped = threading.Event()
        self._checking = threading.Lock()  # held while a check (and its cancel) is under way
        self._thread = threading.Thread(target=self._watch, name="goex-lock-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopped.wait(max(self.timeout / 2, 0.05)):
            with self._checking:
                try:
                    with self.engine.connect() as conn:
                        found = conn.execute(
                            sa.text(WAITING_ON_US), {"pid": self.pid, "timeout": self.timeout}
                        ).all()
                        conn.commit()
                except sa.exc.SQLAlchemyError:
                    continue  # the server is busy or gone: the batch will say so itself
                self.cancelled.extend(int(pid) for pid, _ in found)

    def settle(self) -> list[int]:
        """The sessions cancelled so far, once a check under way has finished (the batch may
        see its dblink call fail before the watcher's query returns)."""
        with self._checking:
            return list(self.cancelled)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def reason(self) -> str:
        """Why the batch failed, once the watcher cancelled a session waiting for it."""
        pids = ", ".join(str(p) for p in sorted(set(self.cancelled)))
        return (
            f"the batch opened a second connection to this database (dblink or postgres_fdw, "
            f"in a function or trigger) that waited longer than lock_timeout "
            f"({self.timeout:g} s) for locks the batch itself holds; that session (pid {pids}) "
            f"was cancelled, so its write never happened, and the batch was rolled back: "
            f"nothing changed"
        )
