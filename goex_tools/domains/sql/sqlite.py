"""SQLite through apsw: statements recorded by the session extension, undone by its inverse.

The session records every row the transaction changes on its connection, in every table:
rows a statement names, rows removed by ON DELETE CASCADE, rows written by triggers, keys
SQLite generated. Tables without a primary key are logged by triggers instead (the session
mis-records them past ~128 changes, see `sqlite_keyless`). The inverted changeset is the
compensation; applying it with triggers and foreign-key actions switched off restores
exactly those rows, and its conflict handler says which rows someone else changed since.
AUTOINCREMENT counters live in `sqlite_sequence`, which the session does not record, so they
are journaled and restored alongside, unless others took numbers since (then they stay).
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

import apsw
from pydantic import BaseModel

from goex_tools.domains.sql import sqlite_keyless
from goex_tools.domains.sql.changes import (
    NOTHING,
    SAMPLE_ROWS,
    Captured,
    Image,
    Operation,
    RowChange,
    conflict_report,
    unforceable_report,
    until_conflict,
)
from goex_tools.domains.sql.databases import DatabaseRef, resolve, sqlite_path
from goex_tools.domains.sql.errors import SqlError
from goex_tools.domains.sql.quoting import ident, pack, unpack
from goex_tools.domains.sql.results import StatementResult, collect
from goex_tools.domains.sql.sqlite_keyless import KeylessRun
from goex_tools.errors import CompensationConflict
from goex_tools.model import JSONDict
from goex_tools.redaction import UNDO_HELD_A_SECRET, holds_secret
from goex_tools.registry import EffectState

MECHANISM = "sqlite-session"
KIND = "sql.sqlite_changeset"
BUSY_TIMEOUT_MS = 5000
OPCODES: dict[int, Operation] = {
    apsw.SQLITE_INSERT: "insert",
    apsw.SQLITE_UPDATE: "update",
    apsw.SQLITE_DELETE: "delete",
}
OMIT = apsw.SQLITE_CHANGESET_OMIT
FETCH_CHUNK = 500  # keys per query reading whole rows
Sequences = dict[str, int]
Row = tuple[Any, ...]
Images = tuple[Row | None, Row | None]  # before, after (an update's: whole rows, once read)
Event = tuple[str, Operation, Images]


class UpdatedRows(BaseModel):
    """The rows a batch updated in one table, in full (a changeset keeps only the changed
    columns, yet a later change to any column is a conflict, and forcing restores them all).

    `images` is one JSON text (the rows' values after the batch; bytes as {"hex": ...} when
    SQLite wrote it, {"base64": ...} when Python did) rather than a model per row: 100,000
    rows stay cheap to journal and read. The values before are those rows with the
    changeset's old values over them.
    """

    table: str
    columns: list[str]
    key: list[int]  # positions of the key in `columns` (the rowid for tables without a key)
    images: str


class ChangesetArgs(BaseModel):
    """Arguments of `sql.sqlite_changeset`: what a committed batch changed, as a changeset.

    `packed`: the changeset and the images are zlib-compressed before base64 (a 100,000-row
    update journals about a quarter of the bytes, and the journal writes them twice);
    journals from before compression have them plain.
    """

    database: DatabaseRef
    changeset: str | None = None  # base64; None until captured (then nothing was committed)
    sequences: dict[str, tuple[int | None, int | None]] = {}  # name -> (before, after)
    updated: list[UpdatedRows] = []  # full images, so that any later change is a conflict
    keyless: list[KeylessRun] = []  # tables without a primary key (see sqlite_keyless)
    keyless_after: str | None = None  # packed JSON: sqlite_keyless.counts after the batch
    packed: bool = False

    def changeset_bytes(self) -> bytes:
        if self.changeset is None:
            return b""
        data = base64.b64decode(self.changeset)
        return zlib.decompress(data) if self.packed else data

    def images(self, rows: UpdatedRows) -> str:
        """The JSON text of `rows.images`."""
        return (
            zlib.decompress(base64.b64decode(rows.images)).decode() if self.packed else rows.images
        )

    def keyless_counts(self) -> dict[str, list[list[Any]]] | None:
        """What the batch left in its keyless tables, counted (None in older journals)."""
        if self.keyless_after is None:
            return None
        counted: dict[str, list[list[Any]]] = json.loads(unpack(self.keyless_after) or "{}")
        return counted

    def keyless_runs(self) -> list[KeylessRun]:
        """`keyless` with its images unpacked."""
        if not self.packed:
            return self.keyless
        return [
            run.model_copy(update={"old": unpack(run.old), "new": unpack(run.new)})
            for run in self.keyless
        ]


@dataclass
class _Changed:
    """One table the batch changed, as the capture walks the changeset."""

    columns: list[str]
    key: list[int]  # positions of the key in `columns`
    key_of: Callable[[Any], Any]  # an update's old values -> its key (a value, or a tuple)
    ops: list[int] = field(default_factory=list)  # the opcode of every event, in order
    updated: list[Any] = field(default_factory=list)  # keys of its updated rows
    sample: list[Event] = field(default_factory=list)  # its first events, for the summary


class SqliteTransaction:
    """One apsw transaction on an SQLite file, recording its changes if asked to."""

    def __init__(self, url: str, *, capture: bool, read_only: bool = False) -> None:
        self.conn = connect(url)
        self._names: dict[str, list[str]] = {}  # column names per table
        self._keys: dict[str, list[int]] = {}  # key positions per table
        self._captured: tuple[bytes, Captured[Images], list[UpdatedRows]] | None = None
        self._after: dict[tuple[str, Any], Row] = {}  # whole rows after, of sampled updates
        self.session: apsw.Session | None = None
        self.keyless: sqlite_keyless.Capture | None = None
        if capture:  # tables with a primary key; the others get triggers (sqlite_keyless)
            self.session = apsw.Session(self.conn, "main")
            self.session.attach()
        if read_only:  # a read takes no write lock, and cannot write even by accident
            self.conn.execute("PRAGMA query_only = ON")
        self.conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        self.sequences_before = _sequences(self.conn)
        self._null_keys = _null_key_rows(self.conn) if capture else {}
        if capture:
            self.keyless = sqlite_keyless.Capture(self.conn)

    def execute(self, sql: str, limit: int) -> StatementResult:
        cursor = self.conn.cursor()
        columns: list[str] = []

        def rows() -> Any:
            for row in cursor.execute(sql):
                if not columns:
                    columns.extend(d[0] for d in cursor.get_description())
                yield row

        result = collect(rows(), columns, limit)
        if not columns:
            result.row_count = self.conn.changes()
        return result

    def changes(self) -> Captured[Images]:
        """Counts of every row event, and the first events of each table with full before and
        after images (the changeset alone keeps only the changed columns of an update)."""
        if self.session is None:
            return NOTHING  # type: ignore[return-value]
        return self._capture()[1]

    def _show(self, event: Event) -> RowChange:
        table, op, (before, after) = event
        if self.keyless is not None and table in self.keyless.columns:  # whole rows
            columns = self.keyless.columns[table]
            return RowChange(
                table=table, op=op, before=_image(columns, before), after=_image(columns, after)
            )
        if op == "update":  # the changeset's old values over the whole row read after
            key = _key(self._keys[table], before)
            after = self._after[(table, key)]
            before = _before(before, after)
        columns = self._names[table]
        return RowChange(
            table=table, op=op, before=_image(columns, before), after=_image(columns, after)
        )

    def _capture(self) -> tuple[bytes, Captured[Images], list[UpdatedRows]]:
        """The batch's changeset, its events (counted, and a sample), and its updated rows in
        full, once, after the batch. The per-row work is one pass over the changeset keeping
        the keys of updated rows; SQLite reads those rows whole and writes their JSON."""
        assert self.session is not None
        if self._captured is None:
            _check_null_keys(self.conn, self._null_keys)
            changeset = self.session.changeset()
            tables = self._walk(changeset)
            updated = [
                self._updated_rows(name, table) for name, table in tables.items() if table.updated
            ]
            counts = {
                (name, op): table.ops.count(code)
                for name, table in tables.items()
                for code, op in OPCODES.items()
            }
            sample = [event for table in tables.values() for event in table.sample]
            assert self.keyless is not None
            counts.update(self.keyless.counts())
            sample += self.keyless.sample()
            captured = Captured(events=sample, show=self._show, counts=counts)
            self._captured = (changeset, captured, updated)
        return self._captured

    def _walk(self, changeset: bytes) -> dict[str, _Changed]:
        """One pass over the changeset: per table, its operations, the keys of its updated
        rows and its first events. (A changeset lists the changes of one table together.)"""
        tables: dict[str, _Changed] = {}
        name = None
        update, insert = apsw.SQLITE_UPDATE, apsw.SQLITE_INSERT
        name_and_code = attrgetter("name", "opcode")
        for change in apsw.Changeset.iter(changeset):
            changed, code = name_and_code(change)
            if changed != name:
                name = changed
                if name not in tables:
                    tables[name] = self._changed(name, change)
                table = tables[name]
                ops, updated, sample, key_of = table.ops, table.updated, table.sample, table.key_of
                room = SAMPLE_ROWS - len(sample)
            ops.append(code)
            if code == update:
                # the session records a changed primary key as a delete and an insert, so
                # an update's old key is its key; its values after are read whole later
                updated.append(key_of(change.old))
            if room:
                room -= 1
                after = change.new if code == insert else None
                sample.append((changed, OPCODES[code], (change.old, after)))
        return tables

    def _changed(self, name: str, change: apsw.TableChange) -> _Changed:
        if name not in self._names:
            self._names[name] = _columns(self.conn, name, change.column_count)
        key = self._keys[name] = sorted(change.pk_columns)
        return _Changed(columns=self._names[name], key=key, key_of=itemgetter(*key))

    def _updated_rows(self, name: str, table: _Changed) -> UpdatedRows:
        """The updated rows of one table, whole (the transaction that updated them is still
        open), as one JSON text; and the sampled ones for the summary."""

        def read(keys: list[Any]) -> dict[Row, Row]:  # `key_of` gives a bare value for one column
            wrapped = keys if len(table.key) > 1 else [(k,) for k in keys]
            return _fetch(self.conn, name, table.columns, table.key, wrapped)

        for key, row in read(table.updated[:SAMPLE_ROWS]).items():
            self._after[(name, key)] = row
        images = _images_json(self.conn, name, table.columns, table.key, table.updated)
        if images is None:  # keys JSON cannot carry exactly: read them in Python
            images = _dump(list(read(table.updated).values()))
        return UpdatedRows(table=name, columns=table.columns, key=table.key, images=images)

    def keyless_tables(self) -> list[str]:
        """Changed tables without a primary key (logged by triggers, see sqlite_keyless)."""
        if self.keyless is None:
            return []
        return sorted({run.table for run in self.keyless.runs()})

    def compensation_args(self, ref: DatabaseRef) -> JSONDict:
        assert self.session is not None
        after = _sequences(self.conn)
        moved = {
            name: (self.sequences_before.get(name), after.get(name))
            for name in set(self.sequences_before) | set(after)
            if self.sequences_before.get(name) != after.get(name)
        }
        changeset, _, updated = self._capture()
        assert self.keyless is not None
        keyless = self.keyless.runs()
        texts = [u.images for u in updated] + [i for r in keyless for i in (r.old, r.new) if i]
        if holds_secret(changeset) or any(holds_secret(t) for t in texts):
            return {"unavailable": UNDO_HELD_A_SECRET}  # packed, the journal could not mask it
        return ChangesetArgs(
            database=ref,
            changeset=_pack(changeset),
            sequences=moved,
            updated=[u.model_copy(update={"images": _pack(u.images.encode())}) for u in updated],
            keyless=[
                r.model_copy(update={"old": pack(r.old), "new": pack(r.new)}) for r in keyless
            ],
            keyless_after=pack(json.dumps(sqlite_keyless.counts(self.conn, keyless))),
            packed=True,
        ).model_dump(mode="json")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if not self.conn.get_autocommit():
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self.conn.close()


def _null_key_rows(conn: apsw.Connection) -> dict[str, list[Row]]:
    """Per table whose primary key may hold NULL (SQLite allows it outside INTEGER PRIMARY
    KEY and WITHOUT ROWID tables), its rows with a NULL in the key, with their rowids."""
    nullable: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "SELECT l.name, c.name FROM pragma_table_list AS l "
        "JOIN pragma_table_info(l.name) AS c WHERE l.schema = 'main' AND l.type = 'table' "
        'AND NOT l.wr AND c.pk > 0 AND NOT c."notnull" '
        "AND l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    ):
        nullable.setdefault(str(table), []).append(str(column))
    return {
        table: conn.execute(
            f"SELECT rowid, * FROM {ident(table)} WHERE "
            + " OR ".join(f"{ident(c)} IS NULL" for c in columns)
            + " ORDER BY rowid"
        ).fetchall()
        for table, columns in nullable.items()
    }


def _check_null_keys(conn: apsw.Connection, before: dict[str, list[Row]]) -> None:
    """The session extension records no row whose primary key holds a NULL: a batch that
    added, changed or removed one could not be undone, so it fails (and is rolled back)."""
    now = _null_key_rows(conn)
    changed = sorted(t for t in set(now) | set(before) if now.get(t, []) != before.get(t, []))
    if changed:
        raise SqlError(
            f"the batch wrote rows whose primary key is NULL in {', '.join(changed)} (SQLite "
            f"allows NULL there, outside INTEGER PRIMARY KEY and WITHOUT ROWID tables); the "
            f"session extension does not record such rows, so the batch could not be undone: "
            f"it was rolled back, nothing changed (declare the key NOT NULL)"
        )


def connect(url: str) -> apsw.Connection:
    conn = apsw.Connection(sqlite_path(url))
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def restore(args: JSONDict, force: bool) -> None:
    """Apply the inverse of a journaled changeset in one transaction (the compensation).

    An undo that finds the step's rows as they were before it (its own earlier run committed,
    and the process died before the journal said so) does nothing (see `_undone_already`)."""
    parsed = ChangesetArgs.model_validate(args)
    if force and _undone_already(parsed):
        return
    conflicts = _apply_inverse(parsed, force, keep=True)
    if conflicts and not force and not _undone_already(parsed):
        raise CompensationConflict(conflict_report(conflicts))


def _undone_already(args: ChangesetArgs) -> bool:
    """Is every row the step changed as it was before the step? The changeset applies
    forward without a conflict (each updated row holds its old values, each inserted row is
    absent, each deleted row is back), and each keyless table counts its rows as before."""
    runs, after = args.keyless_runs(), args.keyless_counts()
    changeset = args.changeset_bytes()
    if (runs and after is None) or not (runs or changeset):
        return False  # nothing to tell by
    conn = connect(resolve(args.database))
    forward: list[int] = []
    try:
        conn.execute("BEGIN")
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
        for table in {run.table for run in runs}:
            its = [r for r in runs if r.table == table]
            assert after is not None
            if sqlite_keyless.state(conn, table, its, after.get(table, [])) != "before":
                return False
        if changeset:

            def conflict(reason: int, change: apsw.TableChange) -> int:
                forward.append(reason)
                return OMIT

            apsw.Changeset.apply(
                changeset, conn, conflict=conflict, flags=apsw.SQLITE_CHANGESETAPPLY_FKNOACTION
            )
        return not forward
    finally:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        conn.close()


def probe(args: JSONDict) -> EffectState:
    """Did the batch commit? Its inverse applies cleanly only if the after-images are there,
    and the rows it left in tables without a key are there (rows it only removed from them
    tell nothing: identical rows may be there anyway)."""
    parsed = ChangesetArgs.model_validate(args)
    if parsed.changeset is None:
        return EffectState.NOT_HAPPENED  # the changeset is journaled before COMMIT
    total = sum(1 for _ in apsw.Changeset.iter(parsed.changeset_bytes()))
    conn = connect(resolve(parsed.database))
    try:
        groups, missing = sqlite_keyless.evidence(conn, parsed.keyless_runs())
    finally:
        conn.close()
    if total + groups == 0:  # nothing to look for
        return EffectState.UNKNOWN if parsed.keyless else EffectState.HAPPENED
    conflicts = len(_apply_inverse(parsed.model_copy(update={"keyless": []}), False, keep=False))
    if not conflicts and not missing:
        return EffectState.HAPPENED
    if conflicts >= total and missing >= groups:
        return EffectState.NOT_HAPPENED
    return EffectState.UNKNOWN


def _apply_inverse(args: ChangesetArgs, force: bool, *, keep: bool) -> list[str]:
    """Apply the inverse in one transaction, committed if `keep` and nothing conflicts (or
    `force`); returns the conflicts (see `_invert`)."""
    conn = connect(resolve(args.database))
    try:
        conn.execute("BEGIN IMMEDIATE")
        conflicts = _invert(conn, args, force, keep=keep)
        if keep and (force or not conflicts):
            conn.execute("COMMIT")
    except apsw.ConstraintError as exc:
        raise SqlError(f"the undo would break a constraint, so it was not applied: {exc}") from None
    finally:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        conn.close()
    return conflicts


def preview(chain: list[JSONDict]) -> list[list[str]]:
    """The conflicts of each undo of `chain` (the steps' arguments, newest first, one
    database), tried one after another in one transaction that is always rolled back: an
    older step's undo meets the rows as the newer ones' undos leave them (`until_conflict`)."""
    if not chain:
        return []
    parsed = [ChangesetArgs.model_validate(args) for args in chain]

    def undo(args: ChangesetArgs) -> list[str]:
        try:
            return _invert(conn, args, False, keep=False)
        except apsw.ConstraintError as exc:
            return [f"the undo would break a constraint: {exc}"]

    conn = connect(resolve(parsed[0].database))
    try:
        conn.execute("BEGIN IMMEDIATE")
        return until_conflict(parsed, undo)
    finally:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        conn.close()


def _invert(conn: apsw.Connection, args: ChangesetArgs, force: bool, *, keep: bool) -> list[str]:
    """Apply the inverse inside the caller's transaction; returns the conflicts. Rows of
    tables without a primary key are the rows at their rowid only while they hold the step's
    values (VACUUM renumbers rowids): a deleted row whose rowid another row holds now is
    re-added beside it, and one that changed since cannot be forced (raises SqlError)."""
    conflicts: list[str] = []
    changed_since: list[tuple[UpdatedRows, Row, Row]] = []  # (table, key, after)
    reported: set[tuple[str, Row]] = set()  # rows `_changed_since` already named
    keyless: set[str] = set()
    readd: list[tuple[str, Row]] = []  # keyless rows to insert under a new rowid
    unforceable: list[str] = []  # keyless rows force cannot tell from others
    broken_keys = False

    def on_conflict(reason: int, change: apsw.TableChange) -> int:
        nonlocal broken_keys
        if reason == apsw.SQLITE_CHANGESET_FOREIGN_KEY:
            broken_keys = True  # keep the changes (uncommitted) to list the violations below
            conflicts.append(_describe(reason, change))
            return apsw.SQLITE_CHANGESET_OMIT
        if change.name in keyless and keep:
            values = change.new
            if reason == apsw.SQLITE_CHANGESET_CONFLICT and values != change.conflict:
                assert values is not None  # a conflicting insert has its row
                readd.append((change.name, values))  # its rowid is another row's now
                return apsw.SQLITE_CHANGESET_OMIT
            unforceable.append(_describe(reason, change))
        if _row_key(change) not in reported:
            conflicts.append(_describe(reason, change))
        if (
            force
            and change.name not in keyless
            and reason
            in (
                apsw.SQLITE_CHANGESET_DATA,
                apsw.SQLITE_CHANGESET_CONFLICT,
            )
        ):
            return apsw.SQLITE_CHANGESET_REPLACE
        return apsw.SQLITE_CHANGESET_OMIT

    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    conn.execute("PRAGMA defer_foreign_keys = ON")  # forced rows are checked at the end too
    keyless.update(n for (n,) in conn.execute(sqlite_keyless.KEYLESS))  # old changesets
    conflicts += sqlite_keyless.undo(conn, args.keyless_runs(), force, args.keyless_counts())
    changed_since.extend(_changed_since(conn, args, conflicts))
    reported.update((rows.table, key) for rows, key, _ in changed_since)
    unforceable.extend(
        f"{rows.table} row (rowid {key[0]}) changed since the step"
        for rows, key, _ in changed_since
        if rows.table in keyless
    )
    changeset = args.changeset_bytes()
    if changeset:
        apsw.Changeset.apply(
            changeset,
            conn,
            conflict=on_conflict,
            flags=apsw.SQLITE_CHANGESETAPPLY_INVERT | apsw.SQLITE_CHANGESETAPPLY_FKNOACTION,
        )
    if force and unforceable:
        raise SqlError(unforceable_report(unforceable))
    for table, values in readd:
        _add_row(conn, table, values)
    if force and changed_since:
        olds = _old_values(changeset, reported)
        for rows, key, after in changed_since:
            _put_row(conn, rows, key, _before(olds[(rows.table, key)], after))
    _restore_sequences(conn, args.sequences)
    # COMMIT refuses deferred violations anyway; the (full) check names them, when likely
    suspect = keep and (broken_keys or (force and bool(changed_since)))
    violations = _foreign_key_violations(conn) if suspect else []
    if violations or (keep and broken_keys):
        raise SqlError(
            "the undo would break a foreign key, so it was not applied (force cannot "
            "override this): " + "; ".join(violations or conflicts[-3:])
        )
    return conflicts


def _add_row(conn: apsw.Connection, table: str, values: Row) -> None:
    """Insert a row of a keyless table (its rowid first in `values`) under a new rowid."""
    columns = _columns(conn, table, len(values))[1:]
    cols = ", ".join(ident(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO {ident(table)} ({cols}) VALUES ({marks})", values[1:])


def _foreign_key_violations(conn: apsw.Connection, limit: int = 5) -> list[str]:
    """Rows whose foreign key points at nothing, as this (uncommitted) undo would leave them."""
    found = conn.execute("PRAGMA foreign_key_check").fetchall()
    shown = [
        f"{table} row (rowid {rowid}) refers to a missing {parent} row"
        for table, rowid, parent, _ in found[:limit]
    ]
    if len(found) > limit:
        shown.append(f"and {len(found) - limit} more")
    return shown


def _changed_since(
    conn: apsw.Connection, args: ChangesetArgs, conflicts: list[str]
) -> list[tuple[UpdatedRows, Row, Row]]:
    """Updated rows that no longer equal the step's full after-image: (table, key, after)."""
    found = []
    for rows in args.updated:
        images = [tuple(after) for after in _candidates(conn, rows, args.images(rows))]
        keys = [tuple(after[i] for i in rows.key) for after in images]
        current = _fetch(conn, rows.table, rows.columns, rows.key, keys)
        for key, after in zip(keys, images, strict=True):
            now = current.get(key)
            if now != after:
                what = "was deleted" if now is None else "was changed"
                conflicts.append(f"{rows.table} row {key} {what} since the step")
                found.append((rows, key, after))
    return found


def _candidates(conn: apsw.Connection, rows: UpdatedRows, images: str) -> list[list[Any]]:
    """The after-images of the rows that may have changed since the step: those SQLite finds
    missing, or writes differently now (a row it writes the same is the same). Only these are
    compared value by value in Python (images Python wrote, e.g. with base64 blobs, all are)."""
    names = [ident(c) for c in rows.columns]
    match = " AND ".join(f"t.{names[k]} = k.value ->> {k}" for k in rows.key)
    query = (
        f"SELECT k.value FROM json_each(?) AS k LEFT JOIN main.{ident(rows.table)} AS t "
        f"ON {match} WHERE t.{names[rows.key[0]]} IS NULL OR k.value IS NOT "
        f"json_array({_image_sql(names)})"
    )
    return [_load(image) for (image,) in conn.execute(query, (images,))]


def _row_key(change: apsw.TableChange) -> tuple[str, Row] | None:
    """(table, key) of an update a conflict handler sees, to match `_changed_since`'s rows."""
    if change.op != "UPDATE" or change.old is None or change.pk_columns is None:
        return None
    return change.name, _key(sorted(change.pk_columns), change.old)


def _old_values(changeset: bytes, wanted: set[tuple[str, Row]]) -> dict[tuple[str, Row], Row]:
    """The changeset's old values of the updates of these (table, key)s."""
    found: dict[tuple[str, Row], Row] = {}
    for change in apsw.Changeset.iter(changeset):
        if change.op == "UPDATE" and change.old is not None:
            where = (change.name, _key(sorted(change.pk_columns), change.old))
            if where in wanted:
                found[where] = change.old
    return found


def _key(key: list[int], old: Row | None) -> Row:
    """An updated row's key (the same before and after: see `_capture`)."""
    assert old is not None
    return tuple(old[k] for k in key)


def _before(old: Row | None, after: Row | None) -> Row:
    """An updated row in full before the batch: its old values over the row after it."""
    assert old is not None and after is not None
    return tuple(a if o is apsw.no_change else o for o, a in zip(old, after, strict=True))


def _put_row(conn: apsw.Connection, rows: UpdatedRows, key: Row, before: Row) -> None:
    """Forced: write the full before-image over whatever the row is now (or re-create it)."""
    where = " AND ".join(f"{ident(rows.columns[i])} = ?" for i in rows.key)
    sets = ", ".join(f"{ident(c)} = ?" for c in rows.columns)
    conn.execute(f"UPDATE {ident(rows.table)} SET {sets} WHERE {where}", (*before, *key))
    if conn.changes() == 0:
        cols = ", ".join(ident(c) for c in rows.columns)
        marks = ", ".join("?" for _ in rows.columns)
        conn.execute(f"INSERT INTO {ident(rows.table)} ({cols}) VALUES ({marks})", before)


def _fetch(
    conn: apsw.Connection, table: str, columns: list[str], key: list[int], keys: list[Row]
) -> dict[Row, Row]:
    """The rows of `table` with these keys, by key: one query per chunk of keys."""
    cols = ", ".join(ident(c) for c in columns)
    names = [ident(columns[i]) for i in key]
    target = names[0] if len(names) == 1 else f"({', '.join(names)})"
    mark = "?" if len(names) == 1 else f"({', '.join('?' for _ in names)})"
    per = max(1, min(FETCH_CHUNK, conn.limit(apsw.SQLITE_LIMIT_VARIABLE_NUMBER) // len(names)))
    found: dict[Row, Row] = {}
    for start in range(0, len(keys), per):
        chunk = keys[start : start + per]
        listed = ", ".join(mark for _ in chunk)
        within = f"({listed})" if len(names) == 1 else f"(VALUES {listed})"
        for row in conn.execute(
            f"SELECT {cols} FROM {ident(table)} WHERE {target} IN {within}",
            tuple(v for k in chunk for v in k),
        ):
            found[tuple(row[i] for i in key)] = row
    return found


def _images_json(
    conn: apsw.Connection, table: str, columns: list[str], key: list[int], keys: list[Any]
) -> str | None:
    """The rows with these keys, whole, as one JSON array of arrays SQLite writes (blobs as
    {"hex": ...}); None when SQLite cannot be handed the keys exactly (see `_keys_source`)."""
    source = _keys_source(keys, len(key))
    if source is None:
        return None
    names = [ident(c) for c in columns]
    if len(key) == 1:
        match = f"t.{names[key[0]]} = k.value"
    else:
        match = " AND ".join(f"t.{names[k]} = k.value ->> {i}" for i, k in enumerate(key))
    query = (
        f"SELECT json_group_array(json_array({_image_sql(names)})), count(*) "
        f"FROM {source[0]} AS k JOIN main.{ident(table)} AS t ON {match}"
    )
    for found, count in conn.execute(query, (source[1],)):
        if count == len(keys):  # every key found once, as the open transaction guarantees
            return str(found)
    return None


def _keys_source(keys: list[Any], width: int) -> tuple[str, Any] | None:
    """A table of the keys as `value` (one column) or a JSON array (several), and what to
    bind to it: a C array of integers for a single integer key (the common INTEGER PRIMARY
    KEY or rowid), else JSON, which carries integers and text exactly (not blobs or reals)."""
    if width == 1 and _has_carray():
        try:
            return "carray(?)", apsw.carray(array("q", keys))
        except (TypeError, OverflowError):
            pass
    values = keys if width == 1 else chain.from_iterable(keys)
    if not set(map(type, values)) <= {int, str}:
        return None
    return "json_each(?)", json.dumps(keys, separators=(",", ":"))


@functools.cache
def _has_carray() -> bool:
    """Whether this apsw's SQLite has the carray table (builds with SQLITE_ENABLE_CARRAY)."""
    conn = apsw.Connection(":memory:")
    try:
        conn.execute("SELECT value FROM carray(?)", (apsw.carray(array("q", [1])),)).fetchall()
    except (apsw.Error, AttributeError):
        return False
    finally:
        conn.close()
    return True


def _image_sql(names: list[str]) -> str:
    """The values of row `t` as `json_array` arguments: blobs as {"hex": ...}."""
    return ", ".join(
        f"CASE WHEN typeof(t.{n}) = 'blob' THEN json_object('hex', hex(t.{n})) ELSE t.{n} END"
        for n in names
    )


def _pack(data: bytes) -> str:
    """zlib (fastest level: the journal's bytes cost more than compressing them), base64."""
    return base64.b64encode(zlib.compress(data, 1)).decode()


def _dump(images: list[Row]) -> str:
    return json.dumps(images, separators=(",", ":"), default=_encode)


def _load(images: str) -> Any:
    loaded = json.loads(images, object_hook=_decode)
    return loaded


def _encode(value: Any) -> JSONDict:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    raise TypeError(f"unexpected SQLite value {type(value).__name__}")


def _decode(value: JSONDict) -> bytes:
    if "hex" in value:  # written by SQLite (`_images_json`)
        return bytes.fromhex(value["hex"])
    return base64.b64decode(value["base64"])


def _restore_sequences(
    conn: apsw.Connection, sequences: dict[str, tuple[int | None, int | None]]
) -> None:
    """Put AUTOINCREMENT counters back, unless others moved them since (then, like a
    PostgreSQL sequence, the counter stays: the numbers they took are theirs)."""
    current = _sequences(conn)
    for name, (before, after) in sorted(sequences.items()):
        if current.get(name) != after:
            continue
        conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
        if before is not None:
            conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (name, before))


def _sequences(conn: apsw.Connection) -> Sequences:
    try:
        return {str(n): int(s) for n, s in conn.execute("SELECT name, seq FROM sqlite_sequence")}
    except apsw.SQLError:
        return {}  # no AUTOINCREMENT table, so no sqlite_sequence


def _columns(conn: apsw.Connection, table: str, count: int) -> list[str]:
    # The session records the non-generated columns, plus the rowid first for tables without PK.
    stored = [
        row[1]
        for row in conn.execute("SELECT * FROM pragma_table_xinfo(?)", (table,))
        if row[6] == 0
    ]
    if count == len(stored) + 1:
        stored.insert(0, "rowid")
    return stored if len(stored) == count else [f"column{i}" for i in range(count)]


def _image(columns: list[str], values: tuple[Any, ...] | None) -> Image | None:
    if values is None:
        return None
    return {c: v for c, v in zip(columns, values, strict=True) if v is not apsw.no_change}


def _describe(reason: int, change: apsw.TableChange) -> str:
    if reason == apsw.SQLITE_CHANGESET_FOREIGN_KEY:  # reported once, for no row in particular
        return (
            f"the undo would leave {change.fk_conflicts} foreign key violation(s): rows changed "
            f"since the step reference rows it removes, or removed rows it restores refer to"
        )
    what = {
        apsw.SQLITE_CHANGESET_DATA: "was changed since the step",
        apsw.SQLITE_CHANGESET_NOTFOUND: "was deleted since the step",
        apsw.SQLITE_CHANGESET_CONFLICT: "was inserted again since the step",
        apsw.SQLITE_CHANGESET_CONSTRAINT: "cannot be restored (a constraint fails)",
        apsw.SQLITE_CHANGESET_FOREIGN_KEY: "breaks a foreign key",
    }.get(reason, "conflicts")
    key = change.old if change.old is not None else change.new
    keys = sorted(change.pk_columns)
    shown = tuple(key[i] for i in keys) if key is not None else ()
    now = f"; now {change.conflict}" if change.conflict is not None else ""
    return f"{change.name} row {shown} {what}{now}"
