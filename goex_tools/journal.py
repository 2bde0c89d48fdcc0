"""The durable journal: runs, steps and their transitions, stored through SQLAlchemy.

SQLite (a WAL-mode file, `.goex/journal.db` by default) for one machine; any SQLAlchemy URL,
PostgreSQL included, for several processes on several machines sharing one journal.
Every status change is a compare-and-set on the step's current status, written together with
an event row, so two processes can never both compensate a step, and the history of a step is
never lost.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from goex_tools.errors import (
    InvalidArgument,
    JournalDetached,
    JournalNotFound,
    NotFound,
    RunClosed,
    StaleTransition,
)
from goex_tools.journal_engine import (
    READ_OPTION,
    Mode,
    create_schema,
    default_timeout,
    make_engine,
    missing_tables,
    target,
)
from goex_tools.journal_faults import translated
from goex_tools.journal_schema import events_table, metadata, runs_table, steps_table
from goex_tools.journal_writes import (
    StepWrites,
    core_transaction,
    driver_transaction,
    postgres_statement,
    postgres_transaction,
)
from goex_tools.model import (
    CLOSED_RUN_STATUSES,
    Compensation,
    Decision,
    Event,
    Reversibility,
    Run,
    RunStatus,
    Step,
    StepStatus,
    utcnow,
)
from goex_tools.redaction import UNDO_HELD_A_SECRET, redact

__all__ = [
    "DEFAULT_PATH",
    "URL_ENV",
    "Journal",
    "Move",
    "default_url",
    "get_journal",
]

DEFAULT_PATH = Path(".goex") / "journal.db"
URL_ENV = "GOEX_JOURNAL_URL"


class Move(NamedTuple):
    """One compare-and-set transition for `Journal.transitions`."""

    step_id: str
    to: StepStatus
    expect: tuple[StepStatus, ...]
    detail: str = ""
    owner: str | None = None


def default_url() -> str:
    """`GOEX_JOURNAL_URL` if set, else a SQLite file under the working directory."""
    return os.environ.get(URL_ENV) or f"sqlite:///{DEFAULT_PATH}"


_journals: dict[str, Journal] = {}
_journals_lock = threading.Lock()


def get_journal(journal: Journal | str | None = None) -> Journal:
    """`journal` itself, or the process's shared Journal for a URL (default: GOEX_JOURNAL_URL
    or .goex/journal.db), opened on first use."""
    if isinstance(journal, Journal):
        return journal
    key = journal or default_url()
    with _journals_lock:
        cached = _journals.get(key)
        if cached is None or cached.detached:  # a deleted journal: new runs go to a new one
            cached = _journals[key] = Journal(key)
        return cached


class Journal:
    """A handle on one journal database. Cheap to share; safe across threads and processes.

    - `url`: a SQLAlchemy URL (default: `GOEX_JOURNAL_URL`, else `.goex/journal.db`).
    - `durable`: SQLite fsyncs every commit (survives power loss, not only crashes).
    - `create`: create the journal (file, directory, tables) if missing; with False, a
      missing journal raises JournalNotFound and nothing is created.
    - `read_only`: open an existing journal for reading only (creates nothing, takes no lock).
    - `timeout`: seconds to wait for a lock, a connection or an answer before failing with
      JournalUnavailable (default: `GOEX_JOURNAL_TIMEOUT`, else 30).

    Raises: JournalError (JournalNotFound, JournalUnavailable) when the journal cannot be
    opened; its methods raise JournalUnavailable on faults, and JournalDetached when the
    SQLite file was deleted or replaced under the process.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        durable: bool = False,
        create: bool = True,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.url = url or default_url()
        self.read_only = read_only
        self.timeout = timeout if timeout is not None else default_timeout()
        if not self.timeout > 0:
            raise InvalidArgument(f"timeout must be a positive number of seconds, not {timeout}")
        self._target = target(self.url)
        self._name = self._target.url.render_as_string(hide_password=True)
        mode: Mode = "read" if read_only else "create" if create else "open"
        self.engine = make_engine(self._target, mode=mode, durable=durable, timeout=self.timeout)
        dialect = self.engine.dialect.name
        self._writes: Callable[[Engine], AbstractContextManager[StepWrites]]
        self._statement: Callable[[Engine], AbstractContextManager[StepWrites]]
        if dialect == "sqlite" and not read_only:
            self._writes = self._statement = driver_transaction
        elif dialect == "postgresql":
            self._writes, self._statement = postgres_transaction, postgres_statement
        else:
            self._writes = self._statement = core_transaction
        with self._faults("open the journal"):
            if mode == "create":
                create_schema(self.engine, metadata)
            elif missing_tables(self.engine, metadata):
                raise JournalNotFound(
                    f"no goex journal at {self._name}: the database has no goex tables"
                )
        self._identity = self._file_identity()

    def __repr__(self) -> str:
        return f"Journal({self._name!r})"

    def close(self) -> None:
        self.engine.dispose()

    @property
    def detached(self) -> bool:
        """True if the SQLite file this handle writes is no longer the one at its path
        (deleted, or replaced): what it writes now, nobody will read."""
        return self._identity is not None and self._file_identity() != self._identity

    def check_attached(self) -> None:
        """Raise JournalDetached if the journal file was deleted or replaced."""
        if self.detached:
            raise JournalDetached(
                f"goex journal {self._name}: the file was deleted or replaced while this "
                f"process had it open; what was journaled since cannot be read. Nothing more "
                f"runs through this handle: open the journal again (a new run)"
            )

    def _file_identity(self) -> tuple[int, int] | None:
        path = self._target.path
        if path is None:
            return None
        try:
            found = os.stat(path)
        except OSError:
            return (-1, -1)
        return (found.st_dev, found.st_ino)

    def _faults(self, doing: str) -> AbstractContextManager[None]:
        error = getattr(self.engine.dialect.loaded_dbapi, "Error", sqlite3.Error)
        return translated(self._name, doing, self.timeout, self._target.path, error)

    def transaction(self, doing: str) -> AbstractContextManager[Connection]:
        """A write transaction for tables beside the journal's (e.g. the budget ledger):
        faults become JournalErrors about `doing`; a deleted journal file is noticed."""
        return self._tx(doing)

    def reading(self, doing: str) -> AbstractContextManager[Connection]:
        """A read transaction (never the SQLite write lock), faults translated likewise."""
        return self._read(doing)

    @contextmanager
    def _tx(self, doing: str) -> Iterator[Connection]:
        """A write transaction (on SQLite, holding the write lock from its start)."""
        with self._faults(doing), self.engine.begin() as conn:
            yield conn
        self.check_attached()

    @contextmanager
    def _step_writes(self, doing: str, *, one_statement: bool = False) -> Iterator[StepWrites]:
        """Step writes in one transaction (`one_statement`: the block writes with a single
        statement, atomic on its own, so it may skip BEGIN and COMMIT)."""
        begin = self._statement if one_statement else self._writes
        with self._faults(doing), begin(self.engine) as writes:
            yield writes
        self.check_attached()

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        """A read transaction: a snapshot, never the write lock."""
        with (
            self._faults(doing),
            self.engine.connect().execution_options(**{READ_OPTION: True}) as conn,
        ):
            yield conn

    # runs

    def create_run(self, run: Run) -> Run:
        with self._tx(f"record run {run.id}") as conn:
            conn.execute(runs_table.insert().values(**_run_row(run)))
        return run

    def ensure_run(self, run: Run) -> Run:
        """Create the run unless a run with its id exists; return the stored run.

        An existing run is reopened (`active`) to take more steps, unless a rollback of it has
        started: then RunClosed, because a rolled-back run accepts no new steps.
        """
        with self._tx(f"record run {run.id}") as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run.id)).first()
            if row is None:
                conn.execute(runs_table.insert().values(**_run_row(run)))
                return run
            stored = _run_from_row(row._mapping)
            _refuse_closed(stored.id, stored.status.value)
            if stored.status is not RunStatus.ACTIVE:
                conn.execute(
                    runs_table.update()
                    .where(runs_table.c.id == run.id)
                    .values(status=RunStatus.ACTIVE.value)
                )
                stored = stored.model_copy(update={"status": RunStatus.ACTIVE})
        return stored

    def get_run(self, run_id: str) -> Run:
        with self._read(f"read run {run_id}") as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run with id {run_id!r} in {self!r}")
        return _run_from_row(row._mapping)

    def list_runs(self, limit: int = 50, *, offset: int = 0) -> list[Run]:
        """The newest runs first."""
        query = (
            runs_table.select().order_by(runs_table.c.started_at.desc()).limit(limit).offset(offset)
        )
        with self._read("list runs") as conn:
            return [_run_from_row(r._mapping) for r in conn.execute(query)]

    def find_runs(self, **metadata: str) -> list[Run]:
        """The runs whose metadata holds every `key=value` given, oldest first (e.g. the
        runs of one LangGraph conversation: `find_runs(thread_id=...)`)."""
        query = runs_table.select().order_by(runs_table.c.started_at, runs_table.c.id)
        for key, value in metadata.items():
            query = query.where(runs_table.c.metadata[key].as_string() == value)
        with self._read("find runs by metadata") as conn:
            return [_run_from_row(r._mapping) for r in conn.execute(query)]

    def set_run_status(self, run_id: str, status: RunStatus, *, ended: bool = False) -> None:
        """Set a run's status, whatever it was (`end_run` and `close_run` compare first)."""
        values: dict[str, Any] = {"status": status.value}
        if ended:
            values["ended_at"] = utcnow()
        with self._tx(f"update run {run_id}") as conn:
            result = conn.execute(
                runs_table.update().where(runs_table.c.id == run_id).values(**values)
            )
            if result.rowcount == 0:
                raise NotFound(f"no run with id {run_id!r} in {self!r}")

    def end_run(self, run_id: str, status: RunStatus) -> bool:
        """Mark an open run ended (`completed` or `failed`); False, changing nothing, if a
        rollback of it started meanwhile (a closed run stays closed)."""
        closed = [s.value for s in CLOSED_RUN_STATUSES]
        with self._tx(f"end run {run_id}") as conn:
            result = conn.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id, runs_table.c.status.not_in(closed))
                .values(status=status.value, ended_at=utcnow())
            )
        return bool(result.rowcount)

    def close_run(self, run_id: str) -> Run:
        """Close a run before rolling it back: from now on it accepts no new steps (a step
        journaled before this is seen by the rollback; one after it is refused). Returns the
        run as it was."""
        with self._tx(f"close run {run_id}") as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).first()
            if row is None:
                raise NotFound(f"no run with id {run_id!r} in {self!r}")
            before = _run_from_row(row._mapping)
            if before.status not in CLOSED_RUN_STATUSES:
                conn.execute(
                    runs_table.update()
                    .where(runs_table.c.id == run_id)
                    .values(status=RunStatus.ROLLING_BACK.value)
                )
        return before

    def end_rollback(
        self,
        run_id: str,
        remaining: Iterable[StepStatus],
        effectless: Iterable[Reversibility],
    ) -> RunStatus:
        """Set a closed run's status after a rollback: `rolled_back` when no step with an
        effect (reversibility not in `effectless`) is in a `remaining` status, else
        `partially_rolled_back`. Counted and written under the run's lock, so concurrent
        rollbacks cannot leave a stale status behind."""
        count = (
            sa.select(sa.func.count())
            .where(
                steps_table.c.run_id == run_id,
                steps_table.c.status.in_([s.value for s in remaining]),
                steps_table.c.reversibility.not_in([r.value for r in effectless]),
            )
            .scalar_subquery()
        )
        lock = sa.select(runs_table.c.id).where(runs_table.c.id == run_id).with_for_update()
        with self._tx(f"end the rollback of run {run_id}") as conn:
            if conn.execute(lock).first() is None:
                raise NotFound(f"no run with id {run_id!r} in {self!r}")
            left = int(conn.execute(sa.select(count)).scalar() or 0)
            status = RunStatus.PARTIALLY_ROLLED_BACK if left else RunStatus.ROLLED_BACK
            conn.execute(
                runs_table.update().where(runs_table.c.id == run_id).values(status=status.value)
            )
        return status

    # steps

    def add_step(self, step: Step, detail: str = "") -> Step:
        """Write a new step (normally `pending`, before its effect) and return it with `seq`."""
        row = _step_row(step)
        row.pop("seq")
        with self._step_writes(f"journal step {step.tool}") as writes:
            stored = writes.run_status(step.run_id)
            if stored is None:
                raise NotFound(f"no run with id {step.run_id!r} in {self!r}")
            _refuse_closed(step.run_id, stored)
            seq = writes.insert_step(row)
            _add_event(writes, step.id, step.status, detail)
        return step.model_copy(update={"seq": seq})

    def transition(
        self,
        step_id: str,
        to: StepStatus,
        *,
        expect: Iterable[StepStatus],
        detail: str = "",
        output: Any = None,
        effect: dict[str, Any] | None = None,
        compensation: Compensation | None = None,
        error: str | None = None,
        notes: list[str] | None = None,
        decision: Decision | None = None,
        owner: str | None = None,
    ) -> Step:
        """Move a step to `to` if (and only if) its status is one of `expect`."""
        expected = [s.value for s in expect]
        values: dict[str, Any] = {"status": to.value, "updated_at": utcnow()}
        if output is not None:
            values["output"] = redact(_jsonable(output))
        if effect is not None:
            values["effect"] = redact(_jsonable(effect))
        if compensation is not None:
            values["compensation"] = _stored_compensation(compensation.model_dump(mode="json"))
        if error is not None:
            values["error"] = redact(error)
        if notes is not None:
            values["notes"] = redact(notes)
        if decision is not None:
            values["decision"] = redact(decision.model_dump(mode="json"))
        if owner is not None:
            values["owner"] = owner
        event = _event(step_id, to, redact(detail or (error or "")))
        doing = f"record step {step_id} as {to.value}"
        with self._step_writes(doing, one_statement=True) as writes:
            row = writes.transition(step_id, values, expected, event)
        if row is None:  # nothing was written: say why
            with self._read(doing) as conn:
                current = conn.execute(
                    sa.select(steps_table.c.status).where(steps_table.c.id == step_id)
                ).scalar()
            if current is None:
                raise NotFound(f"no step with id {step_id!r} in {self!r}")
            raise StaleTransition(
                f"step {step_id} is {current}, not {' or '.join(expected)}; "
                f"it cannot become {to.value}"
            )
        return _step_from_row(row) if row else self.get_step(step_id)

    def transitions(self, moves: Sequence[Move]) -> list[bool]:
        """Several compare-and-set transitions in one transaction, so one commit (on
        PostgreSQL one statement): each move applies only if its step is in one of its
        expected statuses; whether each did.

        A rollback marks a step compensated and claims the next one in a single commit."""
        doing = "record " + ", ".join(f"step {m.step_id} as {m.to.value}" for m in moves)
        changes = []
        for move in moves:
            values: dict[str, Any] = {"status": move.to.value, "updated_at": utcnow()}
            if move.owner is not None:
                values["owner"] = move.owner
            event = _event(move.step_id, move.to, redact(move.detail))
            changes.append((move.step_id, values, [s.value for s in move.expect], event))
        with self._step_writes(doing, one_statement=True) as writes:
            return writes.transitions(changes)

    def withdraw(self, step_id: str) -> bool:
        """Delete a step that is still pending and has no step under it, with its events.

        For a call a framework paused to replay it later (a human-in-the-loop interrupt): it
        did nothing, and its replay is journaled as a step of its own. False (nothing deleted)
        if the step has moved on or has children.
        """
        with self._tx(f"withdraw step {step_id}") as conn:
            child = conn.execute(
                sa.select(steps_table.c.seq).where(steps_table.c.parent_id == step_id).limit(1)
            ).first()
            if child is not None:
                return False
            deleted = conn.execute(
                steps_table.delete().where(
                    steps_table.c.id == step_id,
                    steps_table.c.status == StepStatus.PENDING.value,
                )
            ).rowcount
            if deleted:
                conn.execute(events_table.delete().where(events_table.c.step_id == step_id))
        return bool(deleted)

    def note(self, step_id: str, detail: str) -> None:
        """Record an event (e.g. a failed compensation attempt) without changing the status."""
        step = self.get_step(step_id)
        with self._step_writes(f"note an event of step {step_id}") as writes:
            _add_event(writes, step_id, step.status, redact(detail))

    def get_step(self, step_id: str) -> Step:
        with self._read(f"read step {step_id}") as conn:
            row = conn.execute(steps_table.select().where(steps_table.c.id == step_id)).first()
        if row is None:
            raise NotFound(f"no step with id {step_id!r} in {self!r}")
        return _step_from_row(row._mapping)

    def steps(
        self,
        run_id: str,
        *,
        after_seq: int | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Step]:
        """A run's steps in journal order (or newest first), those journaled after
        `after_seq`, `limit` of them from `offset`: one query."""
        query = steps_table.select().where(steps_table.c.run_id == run_id)
        if after_seq is not None:
            query = query.where(steps_table.c.seq > after_seq)
        order = steps_table.c.seq.desc() if newest_first else steps_table.c.seq
        query = query.order_by(order).limit(limit).offset(offset or None)
        with self._read(f"read the steps of run {run_id}") as conn:
            rows = conn.execute(query).all()
        return [_step_from_row(r._mapping) for r in rows]

    def count_steps(self, run_id: str) -> int:
        query = sa.select(sa.func.count()).where(steps_table.c.run_id == run_id)
        with self._read(f"count the steps of run {run_id}") as conn:
            return int(conn.execute(query).scalar() or 0)

    def step_owners(self, run_id: str) -> list[str]:
        """The distinct processes that journaled a run's steps (owner tags)."""
        query = sa.select(steps_table.c.owner).where(steps_table.c.run_id == run_id).distinct()
        with self._read(f"read the owners of run {run_id}") as conn:
            return [owner for (owner,) in conn.execute(query) if owner]

    def steps_with_status(self, *statuses: StepStatus) -> list[Step]:
        query = steps_table.select().where(steps_table.c.status.in_([s.value for s in statuses]))
        with self._read("read steps by status") as conn:
            rows = conn.execute(query.order_by(steps_table.c.seq)).all()
        return [_step_from_row(r._mapping) for r in rows]

    def events(self, step_id: str) -> list[Event]:
        query = events_table.select().where(events_table.c.step_id == step_id)
        with self._read(f"read the events of step {step_id}") as conn:
            rows = conn.execute(query.order_by(events_table.c.seq)).all()
        return [
            Event(
                step_id=r.step_id,
                at=_aware(r.at) or r.at,
                status=StepStatus(r.status),
                detail=r.detail,
            )
            for r in rows
        ]


def _refuse_closed(run_id: str, status: str) -> None:
    if status in CLOSED_RUN_STATUSES:
        raise RunClosed(
            f"run {run_id} is {status}: a rollback of it started, so it accepts no new "
            f"steps (start a new run)"
        )


def _event(step_id: str, status: StepStatus, detail: str) -> dict[str, Any]:
    return {"step_id": step_id, "at": utcnow(), "status": status.value, "detail": detail}


def _add_event(writes: StepWrites, step_id: str, status: StepStatus, detail: str) -> None:
    writes.insert_event(_event(step_id, status, detail))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _run_row(run: Run) -> dict[str, Any]:
    data = run.model_dump()
    data["status"] = run.status.value
    data["metadata"] = redact(run.model_dump(mode="json")["metadata"])
    return data


def _run_from_row(row: Any) -> Run:
    data = dict(row)
    data["started_at"] = _aware(data["started_at"])
    data["ended_at"] = _aware(data["ended_at"])
    return Run.model_validate(data)


def _step_row(step: Step) -> dict[str, Any]:
    data = step.model_dump(mode="json")
    for key in ("inputs", "output", "effect", "decision", "error", "notes"):
        data[key] = redact(data[key])
    if data["compensation"] is not None:
        data["compensation"] = _stored_compensation(data["compensation"])
    data["created_at"] = step.created_at
    data["updated_at"] = step.updated_at
    return data


def _stored_compensation(compensation: dict[str, Any]) -> dict[str, Any]:
    """A compensation as the journal stores it: without any secret value.

    Arguments with a secret in them cannot be stored masked (a rollback would write the
    mask back as if it were the data and report the step compensated), so they are replaced
    by an `unavailable` reason: rollback then treats the step as one without an undo.
    """
    masked: dict[str, Any] = redact(compensation)
    if masked["args"] != compensation["args"]:
        masked["args"] = {"unavailable": UNDO_HELD_A_SECRET}
    return masked


def _step_from_row(row: Any) -> Step:
    data = dict(row)
    data["created_at"] = _aware(data["created_at"])
    data["updated_at"] = _aware(data["updated_at"])
    return Step.model_validate(data)
