"""The durable journal: runs, steps and their transitions, stored through SQLAlchemy.

SQLite (a WAL-mode file, `.goex/journal.db` by default) for one machine; any SQLAlchemy URL,
PostgreSQL included, for several processes on several machines sharing one journal.
Every status change is a compare-and-set on the step's current status, written together with
an event row, so two processes can never both compensate a step, and the history of a step is
never lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from goex_tools.errors import NotFound, StaleTransition
from goex_tools.journal_schema import events_table, metadata, runs_table, steps_table
from goex_tools.journal_writes import StepWrites, core_transaction, driver_transaction
from goex_tools.model import (
    Compensation,
    Decision,
    Event,
    Run,
    RunStatus,
    Step,
    StepStatus,
    utcnow,
)
from goex_tools.redaction import UNDO_HELD_A_SECRET, redact

DEFAULT_PATH = Path(".goex") / "journal.db"
URL_ENV = "GOEX_JOURNAL_URL"


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
        if key not in _journals:
            _journals[key] = Journal(key)
        return _journals[key]


class Journal:
    """A handle on one journal database. Cheap to share; safe across threads and processes."""

    def __init__(self, url: str | None = None, *, durable: bool = False) -> None:
        self.url = url or default_url()
        self.engine = _make_engine(self.url, durable=durable)
        on_driver = self.engine.dialect.name == "sqlite"
        self._writes = driver_transaction if on_driver else core_transaction
        metadata.create_all(self.engine)

    def __repr__(self) -> str:
        return f"Journal({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # runs

    def create_run(self, run: Run) -> Run:
        with self._tx() as conn:
            conn.execute(runs_table.insert().values(**_run_row(run)))
        return run

    def ensure_run(self, run: Run) -> Run:
        """Create the run unless a run with its id exists; return the stored run."""
        try:
            return self.get_run(run.id)
        except NotFound:
            try:
                return self.create_run(run)
            except sa.exc.IntegrityError:  # another process created it meanwhile
                return self.get_run(run.id)

    def get_run(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run with id {run_id!r} in {self!r}")
        return _run_from_row(row._mapping)

    def list_runs(self, limit: int = 50) -> list[Run]:
        query = runs_table.select().order_by(runs_table.c.started_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_run_from_row(r._mapping) for r in conn.execute(query)]

    def set_run_status(self, run_id: str, status: RunStatus, *, ended: bool = False) -> None:
        values: dict[str, Any] = {"status": status.value}
        if ended:
            values["ended_at"] = utcnow()
        with self._tx() as conn:
            result = conn.execute(
                runs_table.update().where(runs_table.c.id == run_id).values(**values)
            )
            if result.rowcount == 0:
                raise NotFound(f"no run with id {run_id!r} in {self!r}")

    # steps

    def add_step(self, step: Step, detail: str = "") -> Step:
        """Write a new step (normally `pending`, before its effect) and return it with `seq`."""
        row = _step_row(step)
        row.pop("seq")
        with self._writes(self.engine) as writes:
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
        with self._writes(self.engine) as writes:
            row = writes.update_step(step_id, values, expected)
            if row is None:
                current = writes.status(step_id)
                if current is None:
                    raise NotFound(f"no step with id {step_id!r} in {self!r}")
                raise StaleTransition(
                    f"step {step_id} is {current}, not {' or '.join(expected)}; "
                    f"it cannot become {to.value}"
                )
            _add_event(writes, step_id, to, redact(detail or (error or "")))
        return _step_from_row(row) if row else self.get_step(step_id)

    def withdraw(self, step_id: str) -> bool:
        """Delete a step that is still pending and has no step under it, with its events.

        For a call a framework paused to replay it later (a human-in-the-loop interrupt): it
        did nothing, and its replay is journaled as a step of its own. False (nothing deleted)
        if the step has moved on or has children.
        """
        with self._tx() as conn:
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
        with self._writes(self.engine) as writes:
            _add_event(writes, step_id, step.status, redact(detail))

    def get_step(self, step_id: str) -> Step:
        with self.engine.connect() as conn:
            row = conn.execute(steps_table.select().where(steps_table.c.id == step_id)).first()
        if row is None:
            raise NotFound(f"no step with id {step_id!r} in {self!r}")
        return _step_from_row(row._mapping)

    def steps(self, run_id: str, *, after_seq: int | None = None) -> list[Step]:
        """All steps of a run (or those journaled after `after_seq`), in journal order."""
        query = steps_table.select().where(steps_table.c.run_id == run_id)
        if after_seq is not None:
            query = query.where(steps_table.c.seq > after_seq)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(steps_table.c.seq)).all()
        return [_step_from_row(r._mapping) for r in rows]

    def steps_with_status(self, *statuses: StepStatus) -> list[Step]:
        query = steps_table.select().where(steps_table.c.status.in_([s.value for s in statuses]))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(steps_table.c.seq)).all()
        return [_step_from_row(r._mapping) for r in rows]

    def events(self, step_id: str) -> list[Event]:
        query = events_table.select().where(events_table.c.step_id == step_id)
        with self.engine.connect() as conn:
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


def _make_engine(url: str, *, durable: bool) -> Engine:
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60})
    synchronous = "FULL" if durable else "NORMAL"

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so that BEGIN IMMEDIATE below is used.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers queue on the lock up front instead of failing on a read->write upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _add_event(writes: StepWrites, step_id: str, status: StepStatus, detail: str) -> None:
    writes.insert_event(
        {"step_id": step_id, "at": utcnow(), "status": status.value, "detail": detail}
    )


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
