"""Reading the journal for a reviewer: runs with their step counts, found by what they touched,
and a cheap mark that changes whenever the journal does (for pages that update live).

Read-only queries over the journal's tables, each one statement in a read transaction
(never the SQLite write lock), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from pydantic import BaseModel, Field

from goex_tools.journal import Journal, _run_from_row
from goex_tools.journal_schema import events_table, runs_table, steps_table
from goex_tools.model import Reversibility, Run

__all__ = ["RunSummary", "journal_mark", "run_summaries"]

SEARCH_LIMIT = 200  # characters of a search; longer ones are refused by the caller's form


class RunSummary(BaseModel):
    """A run, with how many of its steps are in each status (tool-call containers left
    out: their effects are counted) and how many tool calls it made."""

    run: Run
    counts: dict[str, int] = Field(default_factory=dict)
    calls: int = 0

    @property
    def framework(self) -> str:
        """The agent framework that made the run (`langchain`, `llamaindex`, `mcp`), or ""."""
        return str(self.run.metadata.get("framework") or "")


def run_summaries(
    journal: Journal, *, limit: int = 50, offset: int = 0, search: str = ""
) -> list[RunSummary]:
    """The newest runs first, each with its step counts.

    `search` keeps the runs whose id or name holds it, or one of whose steps does in its
    tool name, inputs or effect (a path, a table, a host, a URL): case-insensitive, literal.
    """
    query = sa.select(runs_table)
    text = search.strip()
    if text:
        touched = sa.select(steps_table.c.run_id).where(
            sa.or_(
                steps_table.c.tool.icontains(text, autoescape=True),
                sa.cast(steps_table.c.inputs, sa.Text).icontains(text, autoescape=True),
                sa.cast(steps_table.c.effect, sa.Text).icontains(text, autoescape=True),
            )
        )
        query = query.where(
            sa.or_(
                runs_table.c.id.icontains(text, autoescape=True),
                runs_table.c.name.icontains(text, autoescape=True),
                runs_table.c.id.in_(touched),
            )
        )
    query = query.order_by(runs_table.c.started_at.desc()).limit(limit).offset(offset or None)
    with journal.reading("list runs") as conn:
        runs = [_run_from_row(r._mapping) for r in conn.execute(query)]
        ids = [r.id for r in runs]
        counts: dict[str, Counter[str]] = {i: Counter() for i in ids}
        calls: Counter[str] = Counter()
        if ids:
            by_status = (
                sa.select(
                    steps_table.c.run_id,
                    steps_table.c.status,
                    steps_table.c.reversibility,
                    (steps_table.c.parent_id.is_(None)).label("top"),
                    sa.func.count(),
                )
                .where(steps_table.c.run_id.in_(ids))
                .group_by(
                    steps_table.c.run_id,
                    steps_table.c.status,
                    steps_table.c.reversibility,
                    steps_table.c.parent_id.is_(None),
                )
            )
            for run_id, status, reversibility, top, n in conn.execute(by_status):
                if top:
                    calls[run_id] += n
                if reversibility != Reversibility.CONTAINER.value:
                    counts[run_id][status] += n
    return [RunSummary(run=r, counts=dict(counts[r.id]), calls=calls[r.id]) for r in runs]


def journal_mark(journal: Journal) -> str:
    """A short text that changes whenever a run or step is added or changes status (the
    newest event, and the runs by status with their latest start and end)."""
    events = sa.select(sa.func.max(events_table.c.seq))
    runs = sa.select(
        runs_table.c.status,
        sa.func.count(),
        sa.func.max(runs_table.c.started_at),
        sa.func.max(runs_table.c.ended_at),
    ).group_by(runs_table.c.status)
    with journal.reading("look for changes") as conn:
        newest = conn.execute(events).scalar()
        by_status = sorted(tuple(str(v) for v in row) for row in conn.execute(runs))
    return f"{newest}|{by_status}"
