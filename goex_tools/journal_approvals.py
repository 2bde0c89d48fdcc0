"""The journal's approval board: actions waiting for a person's yes or no, and the answers.

An agent's approver (`policy.WebApprover`) posts what it is asked here and waits; the review
page (`goex ui`), in this process or another on the same journal (SQLite file or a shared
PostgreSQL), shows it and writes the answer. Every change of an ask is one compare-and-set
on its status (`pending` -> `approved` | `refused` | `expired`), so an answer and the
agent's time running out can never both win: whichever is written first is what happened.
The board is its own table beside the journal's, created on first use.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from goex_tools.errors import NotFound
from goex_tools.journal import Journal
from goex_tools.journal_engine import create_tables
from goex_tools.model import JSONDict, new_id, utcnow
from goex_tools.redaction import redact

__all__ = ["Approval", "ApprovalBoard", "AskStatus"]

AskStatus = Literal["pending", "approved", "refused", "expired"]

metadata = sa.MetaData()

approvals_table = sa.Table(
    "goex_approvals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("answered_at", sa.DateTime(timezone=True)),
    sa.Column("answered_by", sa.Text, nullable=False, default=""),
)


class Approval(BaseModel):
    """One ask: the action as the approver was shown it (redacted), and what became of it.

    `request` holds `tool`, `domain`, `inputs`, `predicted`, `undo` (exact / semantic /
    none), `undo_description`, `rule`, `reason` and `text` (the whole request as prose).
    """

    id: str = Field(default_factory=new_id)
    run_id: str
    status: AskStatus = "pending"
    request: JSONDict = Field(default_factory=dict)
    asked_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    answered_at: datetime | None = None
    answered_by: str = ""

    @property
    def open(self) -> bool:
        """Still waiting for an answer, and there is time left to give one."""
        return self.status == "pending" and self.expires_at > utcnow()


class ApprovalBoard:
    """The asks on one journal (the table is created if missing)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        with journal.transaction("create the approval board") as conn:
            create_tables(conn, metadata)

    def post(self, run_id: str, request: JSONDict, timeout: float) -> Approval:
        """Put up an ask that stays open `timeout` seconds; its request is stored redacted."""
        now = utcnow()
        ask = Approval(
            run_id=run_id,
            request=redact(request),
            asked_at=now,
            expires_at=now + timedelta(seconds=timeout),
        )
        with self.journal.transaction(f"post an approval request of run {run_id}") as conn:
            conn.execute(approvals_table.insert().values(**ask.model_dump()))
        return ask

    def answer(self, ask_id: str, approve: bool, *, by: str) -> Approval:
        """Approve or refuse an open ask. Returns the ask as it is now: an ask already
        answered, or whose time ran out (the agent refused it), keeps what it had."""
        now = utcnow()
        values = {
            "status": "approved" if approve else "refused",
            "answered_at": now,
            "answered_by": by,
        }
        self._move(ask_id, values, approvals_table.c.expires_at > now)
        return self.get(ask_id)

    def expire(self, ask_id: str, *, why: str = "no answer in time") -> Approval:
        """Close an ask nobody answered (the asker stops waiting). Returns the ask as it is
        now: an answer written first stands."""
        self._move(ask_id, {"status": "expired", "answered_at": utcnow(), "answered_by": why})
        return self.get(ask_id)

    def get(self, ask_id: str) -> Approval:
        query = approvals_table.select().where(approvals_table.c.id == ask_id)
        with self.journal.reading(f"read approval request {ask_id}") as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no approval request with id {ask_id!r} in {self.journal!r}")
        return _approval(row._mapping)

    def pending(self) -> list[Approval]:
        """Asks still open, oldest first."""
        query = (
            approvals_table.select()
            .where(approvals_table.c.status == "pending", approvals_table.c.expires_at > utcnow())
            .order_by(approvals_table.c.asked_at)
        )
        with self.journal.reading("read the open approval requests") as conn:
            return [_approval(r._mapping) for r in conn.execute(query)]

    def recent(self, limit: int = 20) -> list[Approval]:
        """The newest asks, whatever became of them (an open one whose time passed with its
        asker gone shows as expired)."""
        query = approvals_table.select().order_by(approvals_table.c.asked_at.desc()).limit(limit)
        with self.journal.reading("read the approval requests") as conn:
            return [_approval(r._mapping) for r in conn.execute(query)]

    def mark(self) -> str:
        """Changes whenever an ask is posted or answered (for pages that update live)."""
        query = sa.select(
            sa.func.count(), sa.func.max(approvals_table.c.asked_at),
            sa.func.max(approvals_table.c.answered_at),
        )  # fmt: skip
        with self.journal.reading("look for new approval requests") as conn:
            row = conn.execute(query).first()
        return str(tuple(row) if row is not None else ())

    def _move(self, ask_id: str, values: dict[str, Any], *also: Any) -> None:
        where = [approvals_table.c.id == ask_id, approvals_table.c.status == "pending", *also]
        with self.journal.transaction(f"answer approval request {ask_id}") as conn:
            done = conn.execute(approvals_table.update().where(*where).values(**values))
            if done.rowcount == 0:
                found = conn.execute(
                    sa.select(approvals_table.c.id).where(approvals_table.c.id == ask_id)
                ).first()
                if found is None:
                    raise NotFound(f"no approval request with id {ask_id!r} in {self.journal!r}")


def _approval(row: Any) -> Approval:
    data = dict(row)
    for key in ("asked_at", "expires_at", "answered_at"):
        value = data[key]
        if isinstance(value, datetime) and value.tzinfo is None:  # SQLite keeps no zone
            data[key] = value.replace(tzinfo=utcnow().tzinfo)
    if data["status"] == "pending" and data["expires_at"] <= utcnow():
        data["status"] = "expired"  # its asker stopped waiting (or is gone)
        data["answered_by"] = data["answered_by"] or "no answer in time"
    return Approval.model_validate(data)
