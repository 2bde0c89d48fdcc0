"""PostgreSQL: row images captured by triggers that exist only inside the step's transaction.

Before the batch runs, the transaction creates an AFTER ROW trigger on every ordinary table,
calling a temporary function that writes `to_json(OLD)` / `to_json(NEW)` into a temporary
log. The triggers are dropped before COMMIT, so no other session ever sees them and nothing is
left in the schema. They catch what a before-image SELECT misses: rows removed by ON DELETE
CASCADE, rows written by triggers, defaults and generated keys. A foreign table (postgres_fdw)
gets a trigger that stops the batch instead: its rows live on another server.

The undo replays the log backwards in one transaction with `session_replication_role =
replica` (user triggers and foreign-key actions off, so it restores rows, not side effects),
locking and comparing each row with its after-image first: a row someone changed since is a
conflict unless forced. Foreign keys are off too, so the ones the undo touched are checked
before COMMIT (`postgres_keys`). Images stay `json` text (a `json` column's text is kept as
written; the capture function writes floats with every digit whatever the batch set), restored
with `json_populate_record`, and rows are compared as this session's text of the row, so every
type round-trips exactly: -0, NaN, numeric scale, json key order and whitespace (a json value
with whitespace around it, or a json string with escapes, cannot be rebuilt exactly: a batch
changing one fails). The transaction id is journaled before COMMIT; after a crash,
`pg_xact_status` says whether the batch committed.

Sessions are pooled per database (a new one costs ~5 ms). A session keeps the temporary log
(emptied at every COMMIT) and trigger functions its first capture made: creating a temporary
table creates files, 1 to 7 ms per transaction. A returned session is reset like DISCARD ALL,
except that goex's temporary objects stay when the session holds exactly what it held after
making them; a batch that made or changed any temporary object gets all of them dropped.

Costs: creating the triggers takes a SHARE ROW EXCLUSIVE lock on every table until the
transaction ends (concurrent writers wait; readers do not), and dropping them needs the tables'
owner. Sequences are not rewound. TRUNCATE fires no row triggers, so it is classified as DDL
(irreversible).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from goex_tools.domains.sql import postgres_counters
from goex_tools.domains.sql.changes import (
    SAMPLE_ROWS,
    Captured,
    Operation,
    RowChange,
)
from goex_tools.domains.sql.databases import DatabaseRef
from goex_tools.domains.sql.errors import SqlError
from goex_tools.domains.sql.postgres_lock_watch import LockWatch
from goex_tools.domains.sql.quoting import ident, pack, unpack
from goex_tools.domains.sql.results import StatementResult, collect
from goex_tools.model import JSONDict
from goex_tools.redaction import UNDO_HELD_A_SECRET, holds_secret

MECHANISM = "postgresql-row-triggers"
KIND = "sql.restore_rows"
LOCK_TIMEOUT = 10.0  # seconds a batch (or a session it opened) may wait for a lock
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout
# A table's AFTER ROW triggers fire in the byte order of their names: the capture's name (a
# quoted identifier starting with a space) sorts first, so that it logs a row event before
# another trigger's reaction to it changes the same row again (logged after it, undone first).
TRIGGER = " goex_capture_tx"

# The tables row capture watches: every ordinary table but the catalogs and temporary ones,
# and every foreign table (whose rows live elsewhere: a write to one stops the batch).
CAPTURED = """SELECT n.nspname, c.relname, c.relowner, c.relkind FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'f') AND n.nspname <> 'information_schema'
               AND n.nspname NOT LIKE 'pg\\_%' AND c.relpersistence <> 't'"""

# What a session keeps once its first capture made it: the log (emptied at every COMMIT) and
# the trigger functions. Creating a temporary table creates files (1 to 7 ms here), so it is
# done once per pooled session, not per transaction. The log's `seq` orders all events.
SESSION = """
CREATE TEMP TABLE goex_changes (
    seq bigserial, sch text, tbl text, op text, old json, new json
) ON COMMIT DELETE ROWS;
CREATE FUNCTION pg_temp.goex_capture() RETURNS trigger LANGUAGE plpgsql
    SET extra_float_digits = 3 SET IntervalStyle = postgres AS $f$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO pg_temp.goex_changes (sch, tbl, op, old, new)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, 'update', to_json(OLD), to_json(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO pg_temp.goex_changes (sch, tbl, op, old)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, 'delete', to_json(OLD));
    ELSE
        INSERT INTO pg_temp.goex_changes (sch, tbl, op, new)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, 'insert', to_json(NEW));
    END IF;
    RETURN NULL;
END $f$;
CREATE FUNCTION pg_temp.goex_refuse_foreign() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION 'goex-tools cannot record or undo writes to foreign table %.% (its rows live '
        'in another server); the batch was rolled back', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported';
END $f$;
"""

# Every temporary object of the session, with the transaction that last changed it (also the
# log's columns and the tables' defaults, which change no pg_class row): what the session
# held after goex made its own objects must be all it holds when it is returned to the pool
# (otherwise a batch made or changed one, and DISCARD TEMP drops them all).
TEMP_OBJECTS = """SELECT md5(coalesce(string_agg(o, ',' ORDER BY o), '')) FROM (
    SELECT 'c' || oid || '.' || xmin FROM pg_class WHERE relnamespace = pg_my_temp_schema()
    UNION ALL SELECT 'a' || attnum || '.' || xmin FROM pg_attribute
        WHERE attrelid = to_regclass('pg_temp.goex_changes')
    UNION ALL SELECT 'd' || oid || '.' || xmin FROM pg_attrdef
        WHERE adrelid IN (SELECT oid FROM pg_class WHERE relnamespace = pg_my_temp_schema())
    UNION ALL SELECT 'p' || oid || '.' || xmin FROM pg_proc WHERE pronamespace = pg_my_temp_schema()
    UNION ALL SELECT 't' || oid || '.' || xmin FROM pg_type WHERE typnamespace = pg_my_temp_schema()
) AS f(o)"""

# DISCARD ALL but the temporary objects (see `_discard`).
RESET = """CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *;
SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD SEQUENCES"""
SESSION_KEY = "goex_capture_session"  # in a pooled connection's info: TEMP_OBJECTS after SESSION

# One round trip: the triggers, then the transaction id and the tuple counters
# (the baseline `postgres_counters` compares with before COMMIT). The triggers fire whatever
# `session_replication_role` a batch sets (ENABLE ALWAYS). Dropping them before COMMIT needs
# the tables' owner (or a member of its role): the tables this role does not own are listed
# in an error (under NOT_OWNED) before any COMMIT.
NOT_OWNED = "goex-not-owned"
INSTALL = f"""
DO $d$ DECLARE r record; refused text[] := '{{}}'; BEGIN
    FOR r IN {CAPTURED}
    LOOP
        IF NOT pg_has_role(r.relowner, 'USAGE') THEN
            refused := refused || format('%I.%I', r.nspname, r.relname);
        ELSIF r.relkind = 'f' THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON %I.%I '
                           'FOR EACH ROW EXECUTE FUNCTION pg_temp.goex_refuse_foreign(); '
                           'ALTER FOREIGN TABLE %I.%I ENABLE ALWAYS TRIGGER %I',
                           '{TRIGGER}', r.nspname, r.relname, r.nspname, r.relname, '{TRIGGER}');
        ELSE
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I.%I '
                           'FOR EACH ROW EXECUTE FUNCTION pg_temp.goex_capture(); '
                           'ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER %I',
                           '{TRIGGER}', r.nspname, r.relname, r.nspname, r.relname, '{TRIGGER}');
        END IF;
    END LOOP;
    IF refused <> '{{}}' THEN
        RAISE EXCEPTION '%', to_json(refused)
            USING ERRCODE = 'insufficient_privilege', HINT = '{NOT_OWNED}';
    END IF;
END $d$;
SELECT pg_current_xact_id();
{postgres_counters.COUNTERS};
"""

UNINSTALL = f"""
DO $d$ DECLARE r record; BEGIN
    FOR r IN SELECT n.nspname, c.relname FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE t.tgname = '{TRIGGER}'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I.%I', '{TRIGGER}', r.nspname, r.relname);
    END LOOP;
END $d$;
"""


class LoggedRows(BaseModel):
    """Consecutive events of one kind on one table, oldest first. Their images are one JSON
    array text each (every element the exact json text of a row), so that 100,000 rows are
    journaled, read and undone as one value, not as 100,000."""

    schema_: str
    table: str
    op: Literal["insert", "update", "delete"]
    count: int
    old: str | None = None  # the rows before (None for inserts)
    new: str | None = None  # the rows after (None for deletes)


class RestoreRowsArgs(BaseModel):
    """Arguments of `sql.restore_rows`: the row log of a committed batch, oldest first.

    `log`: the runs as one JSON text, zlib-compressed and base64 (JSON of rows compresses
    several times over, and an audited UPDATE logs thousands of one-row runs, which are
    packed together). Journals from before have them in `rows`, plain (or each run's images
    packed, with `packed`).
    """

    database: DatabaseRef
    txid: str | None = None  # None until captured (then nothing was committed)
    rows: list[LoggedRows] = []
    log: str | None = None
    packed: bool = False

    def unpacked(self) -> list[LoggedRows]:
        """The runs, with their images as JSON text."""
        if self.log is not None:
            return RUNS.validate_json(unpack(self.log) or "[]")
        if not self.packed:
            return self.rows
        return [
            r.model_copy(update={"old": unpack(r.old), "new": unpack(r.new)}) for r in self.rows
        ]


RUNS = TypeAdapter(list[LoggedRows])


# The log as runs of consecutive events of one kind on one table (seq minus the event's rank
# in its kind is constant exactly within such a run), with where each run starts and whether
# its table has a primary key.
LOG = """SELECT sch, tbl, op, count(*), min(seq),
       CASE WHEN op <> 'insert' THEN json_agg(old ORDER BY seq)::text END,
       CASE WHEN op <> 'delete' THEN json_agg(new ORDER BY seq)::text END,
       EXISTS (SELECT 1 FROM pg_index WHERE indisprimary
               AND indrelid = to_regclass(format('%I.%I', sch, tbl))),
       EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid
               WHERE a.attrelid = to_regclass(format('%I.%I', sch, tbl)) AND a.attnum > 0
                 AND 'json'::regtype IN (a.atttypid, y.typelem, y.typbasetype))
FROM (SELECT *, seq - row_number() OVER (PARTITION BY sch, tbl, op ORDER BY seq) AS run
      FROM goex_changes) AS c
GROUP BY sch, tbl, op, run ORDER BY min(seq)"""

# The images of the first events of every table (the summary's sample), by log position.
SAMPLE = f"""SELECT seq, old::text, new::text FROM goex_changes WHERE seq IN (
    SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY sch, tbl ORDER BY seq) AS n
                     FROM goex_changes) AS f WHERE n <= {SAMPLE_ROWS})"""

# One round trip once the batch ran: the tuple counters, drop the triggers, then read the log
# and the sample (sorts of a large log stay in memory up to this size instead of spilling).
FINISH = (
    f"{postgres_counters.COUNTERS};\n{UNINSTALL};\nSET LOCAL work_mem = '32MB';\n{LOG};\n{SAMPLE}"
)

# The images of the events at some log positions (outside the sample).
IMAGES = """SELECT seq, old::text, new::text FROM goex_changes
WHERE seq = ANY (CAST(:seqs AS bigint[]))"""


ENGINES = 8  # databases whose engines (and idle sessions) a process keeps
_engines: OrderedDict[tuple[str, int], sa.Engine] = OrderedDict()


def engine_for(url: str) -> sa.Engine:
    """One engine per URL for the process: its dialect is set up once (a few ms per call
    otherwise). On PostgreSQL, sessions are pooled (a new one costs ~5 ms and makes the capture
    setup slower still) and reset to a fresh session's state when returned (`_discard`), so
    nothing a batch SET or left behind reaches the next one. Other dialects: no pool."""
    key = (url, os.getpid())  # a forked child must not share its parent's sessions
    engine = _engines.get(key)
    if engine is not None:
        _engines.move_to_end(key)
        return engine
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        engine = sa.create_engine(
            url,
            pool_size=2,
            max_overflow=8,
            pool_pre_ping=True,
            connect_args={"prepare_threshold": None},  # DISCARD ALL drops prepared statements
        )
        sa.event.listen(engine, "checkin", _discard)
    else:
        engine = sa.create_engine(url, poolclass=NullPool)
    _engines[key] = engine
    while len(_engines) > ENGINES:
        _engines.popitem(last=False)[1].dispose()
    return engine


def catalog_engine(url: str) -> sa.Engine:
    """An engine for goex's own catalog lookups on PostgreSQL (which functions a batch calls,
    which sessions wait for it): autocommit, no ping, no reset, so a lookup is one round trip
    (a pooled session's checkout ping and checkin reset were two more). Its sessions run
    nothing but those lookups."""
    key = (f"catalog:{url}", os.getpid())
    engine = _engines.get(key)
    if engine is None:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4)
        _engines[key] = engine
        while len(_engines) > ENGINES:
            _engines.popitem(last=False)[1].dispose()
    return engine


def lookup(url: str, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows of a catalog query (see `catalog_engine`), retried once on a session the
    server closed since."""
    for attempt in (1, 2):
        try:
            with catalog_engine(url).connect() as conn:
                return list(conn.execute(sa.text(sql), params).all())
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _discard(dbapi_conn: Any, record: Any) -> None:
    """Reset a returned session like DISCARD ALL (settings, role, cursors, prepared statements,
    listens, locks), but keep goex's log and trigger functions when the session holds exactly
    what it held after making them; otherwise drop every temporary object. A session that
    cannot be reset is closed, never reused."""
    if dbapi_conn is None or dbapi_conn.closed:
        return
    try:
        dbapi_conn.autocommit = True
        cursor = dbapi_conn.execute(f"{RESET}; {TEMP_OBJECTS}")
        while cursor.nextset():
            pass
        if cursor.fetchone()[0] != record.info.get(SESSION_KEY):
            dbapi_conn.execute("DISCARD TEMP")
            record.info.pop(SESSION_KEY, None)
        dbapi_conn.autocommit = False
    except Exception:  # whatever went wrong, this session is not reused
        dbapi_conn.close()


class SqlAlchemyTransaction:
    """One transaction through SQLAlchemy; on PostgreSQL, optionally capturing row images."""

    def __init__(
        self, url: str, *, capture: bool, read_only: bool, lock_timeout: float | None = None
    ) -> None:
        self.engine = engine_for(url)
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        self.capture = capture
        self.txid: str | None = None
        self.lock_timeout = lock_timeout
        self.watch: LockWatch | None = None
        self._baseline: postgres_counters.Counts = {}  # tuple counters after install
        self._log: list[LoggedRows] | None = None
        self._starts: list[int] = []  # the log position of each run's first event
        self._sample: dict[int, tuple[str | None, str | None]] = {}  # images by log position
        self._keyless: list[tuple[str, str]] = []  # changed tables without a primary key
        postgresql = self.engine.dialect.name == "postgresql"
        setup = ["SET TRANSACTION READ ONLY"] if read_only else []
        if postgresql and lock_timeout is not None:
            setup.append(f"SET LOCAL lock_timeout = '{max(1, round(lock_timeout * 1000))}ms'")
        try:
            if capture:
                self.txid, self._baseline = _install_capture(self.conn, setup, lock_timeout)
            elif setup:
                self.conn.exec_driver_sql("; ".join(setup))
            if postgresql and lock_timeout is not None and not read_only:
                pid = self.conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
                self.watch = LockWatch(catalog_engine(url), int(pid), lock_timeout)
        except BaseException:
            self.rollback()
            self.close()
            raise

    def execute(self, sql: str, limit: int) -> StatementResult:
        try:
            result = self.conn.exec_driver_sql(escaped(sql))
        except sa.exc.DBAPIError as exc:
            if self.watch is not None and self.watch.settle():
                raise SqlError(self.watch.reason()) from None
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise SqlError(_lock_timeout_message(self.lock_timeout, "the batch")) from None
            raise
        if result.returns_rows:
            return collect(result, list(result.keys()), limit)
        return StatementResult(row_count=result.rowcount)

    def log(self) -> list[LoggedRows]:
        if not self.capture:
            return []
        if self._log is None:
            found, sample = _finish_capture(self.conn, self._baseline)
            self._log = [
                LoggedRows(schema_=s, table=t, op=o, count=n, old=old, new=new)
                for s, t, o, n, _, old, new, *_ in found
            ]
            self._starts = [int(row[4]) for row in found]
            self._keyless = sorted({(row[0], row[1]) for row in found if not row[7]})
            self._sample = {int(n): (old, new) for n, old, new in sample}
        return self._log

    def changes(self) -> Captured[int]:
        """Every row event, by its position in the log; `show` reads only the sample's images."""
        events: list[tuple[str, Operation, int]] = []
        for run, start in zip(self.log(), self._starts, strict=True):
            name = _display_name(run.schema_, run.table)
            events.extend((name, run.op, seq) for seq in range(start, start + run.count))
        return Captured(events=events, show=self._show)

    def _show(self, event: tuple[str, Operation, int]) -> RowChange:
        name, op, seq = event
        if seq not in self._sample:  # outside the sample read with the log
            found = self.conn.execute(sa.text(IMAGES), {"seqs": [seq]})
            self._sample.update({int(n): (old, new) for n, old, new in found})
        before, after = (json.loads(image) if image else None for image in self._sample[seq])
        return RowChange(table=name, op=op, before=before, after=after)

    def keyless_tables(self) -> list[str]:
        """Changed tables without a primary key (the undo finds their rows by whole value)."""
        self.log()
        return [_display_name(schema, table) for schema, table in self._keyless]

    def compensation_args(self, ref: DatabaseRef) -> JSONDict:
        rows = self.log()
        if any(holds_secret(i) for r in rows for i in (r.old, r.new) if i):
            return {"unavailable": UNDO_HELD_A_SECRET}  # packed, the journal could not mask it
        log = pack(RUNS.dump_json(rows).decode())
        return RestoreRowsArgs(database=ref, txid=self.txid, log=log).model_dump(mode="json")

    def commit(self) -> None:
        self.tx.commit()

    def rollback(self) -> None:
        if self.tx.is_active:
            self.tx.rollback()

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        self.conn.close()


def _install_capture(
    conn: Connection, setup: list[str], lock_timeout: float | None
) -> tuple[str, postgres_counters.Counts]:
    """Run `setup` (SET statements), create the capture triggers (and, once per session, the
    log and functions), unless this role may not drop them before COMMIT; returns the
    transaction id and the tuple counters once they exist."""
    if SESSION_KEY not in conn.info:
        conn.exec_driver_sql(escaped(SESSION))
        conn.info[SESSION_KEY] = conn.exec_driver_sql(TEMP_OBJECTS).scalar()
    try:
        txid, counters = _script(conn, "".join(f"{s};\n" for s in setup) + INSTALL)
    except Exception as exc:  # the driver's own error: the script ran on its cursor
        if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise SqlError(_lock_timeout_message(lock_timeout, "row capture")) from None
        diag = getattr(exc, "diag", None)
        if getattr(diag, "message_hint", None) != NOT_OWNED:
            raise
        foreign = sorted(json.loads(str(getattr(diag, "message_primary", "[]"))))
    else:
        return str(txid[0][0]), postgres_counters.counts(counters)
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    raise SqlError(
        "row capture creates triggers (living only inside the step's transaction) on every "
        "table, since any table may change by cascade or trigger, and dropping them needs "
        f"the tables' owner: this role does not own {', '.join(foreign[:3])}{more}; run "
        "the statement as the owner (or a member of its role); nothing was run"
    )


def _lock_timeout_message(timeout: float | None, who: str) -> str:
    return (
        f"{who} waited longer than lock_timeout ({timeout:g} s) for a lock another session "
        f"holds (a long transaction on one of the tables); the batch was rolled back, nothing "
        f"changed (run it again later, or with a longer lock_timeout)"
    )


def _finish_capture(
    conn: Connection, baseline: postgres_counters.Counts
) -> tuple[list[Any], list[Any]]:
    """Check the tuple counters against the log, drop the triggers and read the log and its
    sample, in one round trip. Raises SqlError when the counters saw writes the log did not
    (the caller rolls the batch back)."""
    counters, log, sample = _script(conn, FINISH)
    unseen = postgres_counters.unseen_writes(
        baseline, counters, ((r[0], r[1], r[2], int(r[3])) for r in log)
    )
    if unseen:
        raise SqlError(postgres_counters.refusal(unseen))
    inexact = [
        f"{s}.{t}"
        for s, t in sorted({(r[0], r[1]) for r in log if r[8]})
        if not _json_round_trips(conn, s, t)
    ]
    if inexact:
        raise SqlError(
            f"{', '.join(inexact)}: a json value the batch changed has whitespace before or "
            f"after it, or is a string with escapes, which PostgreSQL drops or rewrites when "
            f"the row is rebuilt from its image, so the undo could not restore it exactly; "
            f"the batch was rolled back, nothing changed"
        )
    return log, sample


def _json_round_trips(conn: Connection, schema: str, table: str) -> bool:
    """Do the table's logged images come back as the same text once rebuilt into rows? (Only
    a json value's outer whitespace and a json string's escapes do not: json_populate_record
    trims the one and rewrites the other.) Compared with
    the settings the capture function writes floats and intervals with."""
    conn.exec_driver_sql("SET LOCAL extra_float_digits = 3; SET LOCAL IntervalStyle = postgres")
    name = f"{ident(schema)}.{ident(table)}"
    rebuilt = "to_json(json_populate_record(NULL::{name}, {image}))::text <> {image}::text"
    return not conn.execute(
        sa.text(
            f"SELECT EXISTS (SELECT 1 FROM pg_temp.goex_changes WHERE sch = :s AND tbl = :t "
            f"AND ({rebuilt.format(name=name, image='old')} "
            f"OR {rebuilt.format(name=name, image='new')}))"
        ),
        {"s": schema, "t": table},
    ).scalar()


def _script(conn: Connection, sql: str) -> list[list[Any]]:
    """Run several statements in one round trip; the rows of each that returns rows."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)  # no parameters: the driver sends the script as it is
        results = []
        while True:
            if cursor.description is not None:
                results.append(cursor.fetchall())
            if not cursor.nextset():
                break
    finally:
        cursor.close()
    return results


def escaped(sql: str) -> str:
    """SQL text for a driver that formats `%` placeholders even without parameters."""
    return sql.replace("%", "%%")


def _display_name(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"
