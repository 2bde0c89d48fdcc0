"""The journal's step writes, on SQLAlchemy's execution path or on the SQLite driver's.

Every action writes its step twice (pending before the effect, applied after), so these
writes are the cost every tool call pays. On SQLite, SQLAlchemy's execution machinery was
about 90% of it (a step's two transactions: ~1.2 ms through it, ~0.12 ms on the driver), so
`DriverWrites` runs the same statements (SQLAlchemy's, compiled once) on the DBAPI
connection, passing values through the columns' own bind and result processors: the rows are
exactly those the Core path writes and reads. Other databases use `CoreWrites`.

On PostgreSQL every statement is a network round trip, and a transaction adds two (BEGIN,
COMMIT): `PostgresWrites` makes a status change one statement (the compare-and-set UPDATE and
its event INSERT in one WITH), run in autocommit, where it is atomic on its own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.compiler import SQLCompiler

from goex_tools.journal_schema import events_table, runs_table, steps_table

Row = dict[str, Any]
Change = tuple[str, Row, Sequence[str], Row]
"""A status change: the step's id, the values to set, the statuses expected, its event."""


class StepWrites(Protocol):
    """The writes of one journal transaction on steps and events."""

    def insert_step(self, row: Row) -> int | None:
        """Insert a step; its `seq`."""

    def insert_event(self, row: Row) -> None: ...

    def update_step(self, step_id: str, values: Row, expect: Sequence[str]) -> Row | None:
        """Set `values` if the step's status is in `expect`: the updated row (or, where the
        database cannot return it, an empty dict); None if no step matched."""

    def transition(
        self, step_id: str, values: Row, expect: Sequence[str], event: Row
    ) -> Row | None:
        """`update_step`, and the `event` recorded if (and only if) the step matched."""

    def transitions(self, changes: Sequence[Change]) -> list[bool]:
        """Several `transition`s (the rows not read back): whether each step matched."""

    def status(self, step_id: str) -> str | None: ...

    def run_status(self, run_id: str) -> str | None:
        """A run's status, held (FOR SHARE where the database has it) until the transaction
        ends, so that a rollback closing the run waits for a step being journaled."""


class CoreWrites:
    """Step writes through a SQLAlchemy connection (any database)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.returning = conn.dialect.update_returning

    def insert_step(self, row: Row) -> int | None:
        result = self.conn.execute(steps_table.insert(), row)
        return result.inserted_primary_key[0] if result.inserted_primary_key else None

    def insert_event(self, row: Row) -> None:
        self.conn.execute(events_table.insert(), row)

    def update_step(self, step_id: str, values: Row, expect: Sequence[str]) -> Row | None:
        result = self.conn.execute(
            _update_step(tuple(values), len(expect), self.returning),
            _update_params(step_id, values, expect),
        )
        if self.returning:
            row = result.first()
            return dict(row._mapping) if row is not None else None
        return {} if result.rowcount else None

    def transition(
        self, step_id: str, values: Row, expect: Sequence[str], event: Row
    ) -> Row | None:
        row = self.update_step(step_id, values, expect)
        if row is not None:
            self.insert_event(event)
        return row

    def transitions(self, changes: Sequence[Change]) -> list[bool]:
        matched = []
        for step_id, values, expect, event in changes:
            result = self.conn.execute(
                _update_step(tuple(values), len(expect), False),
                _update_params(step_id, values, expect),
            )
            if result.rowcount:
                self.insert_event(event)
            matched.append(bool(result.rowcount))
        return matched

    def status(self, step_id: str) -> str | None:
        query = sa.select(steps_table.c.status).where(steps_table.c.id == step_id)
        return self.conn.execute(query).scalar()

    def run_status(self, run_id: str) -> str | None:
        query = sa.select(runs_table.c.status).where(runs_table.c.id == run_id)
        return self.conn.execute(query.with_for_update(read=True)).scalar()


@contextmanager
def core_transaction(engine: Engine) -> Iterator[CoreWrites]:
    with engine.begin() as conn:
        yield CoreWrites(conn)


class PostgresWrites(CoreWrites):
    """Step writes on PostgreSQL: a status change and its event in one statement."""

    def transition(
        self, step_id: str, values: Row, expect: Sequence[str], event: Row
    ) -> Row | None:
        params = _update_params(step_id, values, expect)
        params.update({f"e_{k}": v for k, v in event.items() if k != "step_id"})
        row = self.conn.execute(_transition(tuple(values), len(expect)), params).first()
        return dict(row._mapping) if row is not None else None

    def transitions(self, changes: Sequence[Change]) -> list[bool]:
        """All the changes in one statement: one round trip."""
        shape = tuple((tuple(values), len(expect)) for _, values, expect, _ in changes)
        found = {k for (k,) in self.conn.execute(_transitions(shape), _transitions_params(changes))}
        return [i in found for i in range(len(changes))]


@contextmanager
def postgres_transaction(engine: Engine) -> Iterator[PostgresWrites]:
    with engine.begin() as conn:
        yield PostgresWrites(conn)


@contextmanager
def postgres_statement(engine: Engine) -> Iterator[PostgresDriverWrites]:
    """Writes that are one statement each (status changes): on the psycopg connection
    itself, in autocommit (no BEGIN, no COMMIT, none of SQLAlchemy's per-call work: a
    rollback makes one such write per step)."""
    raw = engine.raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        driver.autocommit = True
        yield PostgresDriverWrites(raw.cursor(), engine.dialect)
    finally:
        try:
            driver.autocommit = False  # the pool hands it out again for transactions
        except Exception:
            raw.invalidate()  # broken meanwhile: never pooled again
        raw.close()


class PostgresDriverWrites:
    """Step writes on a psycopg connection: SQLAlchemy's statements, compiled once, values
    through the columns' own bind processors (as `DriverWrites` does for SQLite)."""

    def __init__(self, cursor: Any, dialect: sa.Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def insert_step(self, row: Row) -> int | None:
        self._execute(_INSERT_STEP.returning(steps_table.c.seq), row)
        return int(self.cursor.fetchone()[0])

    def insert_event(self, row: Row) -> None:
        self._execute(_INSERT_EVENT, row)

    def update_step(self, step_id: str, values: Row, expect: Sequence[str]) -> Row | None:
        self._execute(
            _update_step(tuple(values), len(expect), True), _update_params(step_id, values, expect)
        )
        return self._row()

    def transition(
        self, step_id: str, values: Row, expect: Sequence[str], event: Row
    ) -> Row | None:
        params = _update_params(step_id, values, expect)
        params.update({f"e_{k}": v for k, v in event.items() if k != "step_id"})
        self._execute(_transition(tuple(values), len(expect)), params)
        return self._row()

    def transitions(self, changes: Sequence[Change]) -> list[bool]:
        """All the changes in one statement: one round trip, one commit."""
        shape = tuple((tuple(values), len(expect)) for _, values, expect, _ in changes)
        self._execute(_transitions(shape), _transitions_params(changes))
        found = {k for (k,) in self.cursor.fetchall()}
        return [i in found for i in range(len(changes))]

    def status(self, step_id: str) -> str | None:
        self._execute(sa.select(steps_table.c.status).where(steps_table.c.id == step_id), {})
        found = self.cursor.fetchone()
        return None if found is None else str(found[0])

    def run_status(self, run_id: str) -> str | None:
        raise NotImplementedError("a run's status is held inside a transaction, not here")

    def _execute(self, stmt: sa.ClauseElement, params: Mapping[str, Any]) -> None:
        sql, defaults = _named(self.dialect, stmt)
        processors = _processors(self.dialect, "bind")
        bound = dict(defaults)
        for name, value in params.items():
            process = processors.get(_column_of(name))
            bound[name] = process(value) if process is not None else value
        self.cursor.execute(sql, bound)

    def _row(self) -> Row | None:
        found = self.cursor.fetchone()
        if found is None:
            return None
        columns = [d[0] for d in self.cursor.description]
        return _loaded(self.dialect, dict(zip(columns, found, strict=True)))


def _transitions_params(changes: Sequence[Change]) -> Row:
    """The parameters of `_transitions`: change i's under the prefix `m{i}`."""
    params: Row = {}
    for i, (step_id, values, expect, event) in enumerate(changes):
        params.update({f"m{i}{k}": v for k, v in _update_params(step_id, values, expect).items()})
        params.update({f"m{i}e_{k}": v for k, v in event.items() if k != "step_id"})
    return params


@functools.cache
def _transition(keys: tuple[str, ...], expected: int) -> sa.Select[Any]:
    """WITH u AS (UPDATE steps ... RETURNING *), e AS (INSERT INTO events SELECT ... FROM u)
    SELECT * FROM u: the compare-and-set and its event, atomic as one statement."""
    updated = _update_step(keys, expected, True).cte("goex_updated")
    event = events_table.insert().from_select(
        ["step_id", "at", "status", "detail"],
        sa.select(
            updated.c.id,
            sa.bindparam("e_at", type_=events_table.c.at.type),
            sa.bindparam("e_status", type_=events_table.c.status.type),
            sa.bindparam("e_detail", type_=events_table.c.detail.type),
        ),
    )
    return sa.select(updated).add_cte(event.cte("goex_event"))


@functools.cache
def _transitions(
    shape: tuple[tuple[tuple[str, ...], int], ...],
) -> sa.CompoundSelect[Any] | sa.Select[Any]:
    """Several compare-and-set UPDATEs, each with its event INSERT, as one statement:
    WITH u0 AS (UPDATE ... RETURNING id), e0 AS (INSERT ... FROM u0), u1 ... SELECT the
    numbers of the changes that matched. Parameters of change i are prefixed `m{i}`."""
    matched = []
    for i, (keys, expected) in enumerate(shape):
        updated = (
            steps_table.update()
            .where(
                steps_table.c.id == sa.bindparam(f"m{i}_id"),
                steps_table.c.status.in_(
                    [sa.bindparam(f"m{i}_expect{j}") for j in range(expected)]
                ),
            )
            .values({key: sa.bindparam(f"m{i}v_{key}") for key in keys})
            .returning(steps_table.c.id)
            .cte(f"goex_u{i}")
        )
        event = events_table.insert().from_select(
            ["step_id", "at", "status", "detail"],
            sa.select(
                updated.c.id,
                sa.bindparam(f"m{i}e_at", type_=events_table.c.at.type),
                sa.bindparam(f"m{i}e_status", type_=events_table.c.status.type),
                sa.bindparam(f"m{i}e_detail", type_=events_table.c.detail.type),
            ),
        )
        matched.append(
            sa.select(sa.literal(i).label("k"))
            .select_from(updated)
            .add_cte(event.cte(f"goex_e{i}"))
        )
    return matched[0] if len(matched) == 1 else sa.union_all(*matched)


class DriverWrites:
    """Step writes on the SQLite driver's connection, in a `BEGIN IMMEDIATE` transaction."""

    def __init__(self, cursor: Any, dialect: sa.Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def insert_step(self, row: Row) -> int | None:
        sql, names = _compiled(self.dialect, _INSERT_STEP)
        self.cursor.execute(sql, _bound(self.dialect, names, row))
        return int(self.cursor.lastrowid)

    def insert_event(self, row: Row) -> None:
        sql, names = _compiled(self.dialect, _INSERT_EVENT)
        self.cursor.execute(sql, _bound(self.dialect, names, row))

    def update_step(self, step_id: str, values: Row, expect: Sequence[str]) -> Row | None:
        returning = self.dialect.update_returning
        stmt = _update_step(tuple(values), len(expect), returning)
        sql, names = _compiled(self.dialect, stmt)
        params = _update_params(step_id, values, expect)
        self.cursor.execute(sql, _bound(self.dialect, names, params))
        if not returning:
            return {} if self.cursor.rowcount else None
        found = self.cursor.fetchone()
        if found is None:
            return None
        columns = [d[0] for d in self.cursor.description]
        return _loaded(self.dialect, dict(zip(columns, found, strict=True)))

    def transition(
        self, step_id: str, values: Row, expect: Sequence[str], event: Row
    ) -> Row | None:
        row = self.update_step(step_id, values, expect)
        if row is not None:
            self.insert_event(event)
        return row

    def transitions(self, changes: Sequence[Change]) -> list[bool]:
        matched = []
        for step_id, values, expect, event in changes:
            sql, names = _compiled(self.dialect, _update_step(tuple(values), len(expect), False))
            params = _update_params(step_id, values, expect)
            self.cursor.execute(sql, _bound(self.dialect, names, params))
            if self.cursor.rowcount:
                self.insert_event(event)
            matched.append(bool(self.cursor.rowcount))
        return matched

    def status(self, step_id: str) -> str | None:
        self.cursor.execute("SELECT status FROM goex_steps WHERE id = ?", (step_id,))
        found = self.cursor.fetchone()
        return None if found is None else str(found[0])

    def run_status(self, run_id: str) -> str | None:
        # BEGIN IMMEDIATE already holds the write lock: a rollback cannot close the run now.
        self.cursor.execute("SELECT status FROM goex_runs WHERE id = ?", (run_id,))
        found = self.cursor.fetchone()
        return None if found is None else str(found[0])


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverWrites]:
    """A write transaction on a pooled SQLite connection (autocommit off by the journal's
    connect hook, so BEGIN and COMMIT are ours to issue)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield DriverWrites(cursor, engine.dialect)
            cursor.execute("COMMIT")
        except BaseException:
            # SQLite may have ended the transaction itself (a full disk, an I/O error): a
            # ROLLBACK then would fail and hide the error that matters.
            if raw.dbapi_connection is not None and raw.dbapi_connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise
    finally:
        raw.close()


_INSERT_STEP = steps_table.insert().values(
    {c.name: sa.bindparam(c.name) for c in steps_table.c if c.name != "seq"}
)
_INSERT_EVENT = events_table.insert().values(
    {c.name: sa.bindparam(c.name) for c in events_table.c if c.name != "seq"}
)


@functools.cache
def _update_step(keys: tuple[str, ...], expected: int, returning: bool) -> sa.Update:
    """UPDATE steps SET <keys> WHERE id = :_id AND status IN (:_expect0, ...): compare-and-set."""
    stmt = (
        steps_table.update()
        .where(
            steps_table.c.id == sa.bindparam("_id"),
            steps_table.c.status.in_([sa.bindparam(f"_expect{i}") for i in range(expected)]),
        )
        .values({key: sa.bindparam(f"v_{key}") for key in keys})
    )
    return stmt.returning(*steps_table.c) if returning else stmt


def _update_params(step_id: str, values: Row, expect: Sequence[str]) -> Row:
    """The parameters of `_update_step`: new values, the step's id, the expected statuses."""
    expected = {f"_expect{i}": status for i, status in enumerate(expect)}
    return {**{f"v_{k}": v for k, v in values.items()}, "_id": step_id, **expected}


@functools.cache
def _compiled(dialect: sa.Dialect, stmt: sa.ClauseElement) -> tuple[str, tuple[str, ...]]:
    """The statement's SQL for this dialect (positional parameters) and their names in order."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    assert compiled.positional and compiled.positiontup is not None
    return compiled.string, tuple(compiled.positiontup)


def _bound(dialect: sa.Dialect, names: tuple[str, ...], params: Mapping[str, Any]) -> list[Any]:
    """The values of `names`, each through its column type's bind processor."""
    processors = _processors(dialect, "bind")
    values = []
    for name in names:
        value = params[name]
        process = processors.get(_column_of(name))
        values.append(process(value) if process is not None else value)
    return values


def _loaded(dialect: sa.Dialect, row: Row) -> Row:
    """A steps row as the driver returned it, through the columns' result processors."""
    processors = _processors(dialect, "result")
    return {k: (p(v) if (p := processors.get(k)) is not None else v) for k, v in row.items()}


@functools.cache
def _named(dialect: sa.Dialect, stmt: sa.ClauseElement) -> tuple[str, Row]:
    """The statement's SQL for this dialect (named parameters) and its parameters' fixed
    values (literals)."""
    compiled = stmt.compile(dialect=dialect)
    return compiled.string, dict(compiled.params)


@functools.cache
def _column_of(param: str) -> str:
    """The steps/events column a parameter binds (`v_status` and `_expect0` bind `status`;
    `m1v_owner` is change 1's `v_owner`; `e_at` an event's `at`)."""
    param = re.sub(r"^m\d+", "", param)
    if param.startswith("e_"):
        return param[2:]
    if param.startswith("v_"):
        return param[2:]
    if param.startswith("_expect"):
        return "status"
    return "id" if param == "_id" else param


@functools.cache
def _processors(dialect: sa.Dialect, kind: str) -> dict[str, Any]:
    """Column name -> bind (or result) processor of the steps and events tables' types."""
    found: dict[str, Any] = {}
    for column in (*steps_table.c, *events_table.c):
        impl = column.type.dialect_impl(dialect)
        processor = (
            impl.bind_processor(dialect) if kind == "bind" else impl.result_processor(dialect, None)
        )
        if processor is not None:
            found[column.name] = processor
    return found
