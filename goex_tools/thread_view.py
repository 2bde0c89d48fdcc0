"""Reviewing and rewinding a conversation thread (its checkpoints and tool calls) from a
notebook or a terminal, without a framework: what `goex show --thread` and `goex rewind`
print.

    from goex_tools import notebook
    notebook.thread(thread_id)                  # its checkpoints, the calls made after each
    notebook.rewind(thread_id, checkpoint_id)   # the world as it was at that checkpoint

A `ThreadView` renders as an HTML table in Jupyter and as a rich table in a terminal. With a
LangGraph graph at hand, `langchain_goex.rewind(graph, config)` does the same rewind and
also says where to resume the graph.
"""

from __future__ import annotations

import html

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from goex_tools.errors import RollbackFailed
from goex_tools.journal import Journal, default_url, get_journal
from goex_tools.rollback import OnIrreversible
from goex_tools.tables import html_table
from goex_tools.threads import (
    Checkpoint,
    CheckpointCalls,
    RewindReport,
    thread_checkpoints,
    thread_steps,
)
from goex_tools.threads import rewind as rewind_thread

__all__ = ["COLUMNS", "ThreadView", "checkpoint_of", "rewind", "thread"]

COLUMNS = ("point", "where", "made at", "tool calls right after it", "calls since", "undo")


class ThreadView:
    """A thread's points (the checkpoints its tool calls ran after, the points named with
    `mark`), newest first, each with the tool calls made after it; and, after a rewind, what
    it undid or why it stopped."""

    def __init__(
        self,
        thread_id: str,
        *,
        journal: Journal | str | None = None,
        report: RewindReport | None = None,
        error: str | None = None,
    ) -> None:
        self.journal = get_journal(journal)
        self.thread_id = thread_id
        self.checkpoints: list[CheckpointCalls] = thread_checkpoints(
            thread_id, journal=self.journal
        )
        self.tools = {s.id: s.tool for s in thread_steps(thread_id, journal=self.journal)}
        self.report = report
        self.error = error

    def rows(self) -> list[tuple[str, ...]]:
        """One row per point (COLUMNS): its id, where it is (a checkpoint's graph level, `root`
        or a subgraph's namespace, or the name a person gave it), when it was made, the tools
        called right after it, how many calls were made after it, and how many effects a
        rewind to it would undo now."""
        return [
            (
                c.checkpoint_id,
                f"named {c.name!r}" if c.name is not None else c.checkpoint_ns or "root",
                c.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if c.created_at else "-",
                ", ".join(self.tools.get(call, "?") for call in c.next_calls) or "-",
                str(c.calls),
                f"{c.to_undo} effect(s)" if c.to_undo else "nothing left",
            )
            for c in self.checkpoints
        ]

    def title(self) -> str:
        return f"thread {self.thread_id}: {len(self.checkpoints)} point(s) to rewind to"

    def outcome(self) -> str:
        """What the rewind did (or would do), or why it stopped."""
        if self.report is None and self.error is None:
            return ""
        outcomes = self.report.outcomes if self.report is not None else []
        done = sum(o.outcome in ("compensated", "would_compensate") for o in outcomes)
        dry = self.report is not None and self.report.dry_run
        verb = "would undo" if dry else "undid"
        where = f"checkpoint {self.report.checkpoint_id}" if self.report else "the checkpoint"
        if self.error:
            return self.error  # it names the steps that stopped the rewind
        if self.report is not None and self.report.blocked:
            named = "; ".join(f"{o.tool} {o.step_id}: {o.outcome}" for o in self.report.blocked)
            return f"rewinding to {where} would stop before undoing anything: {named}"
        runs = len(self.report.runs) if self.report is not None else 0
        notes = " ".join(self.report.notes) if self.report is not None else ""
        text = f"{verb} {done} step(s) of {runs} run(s): the world as at {where}"
        return f"{text}. {notes}" if notes else text

    def __rich__(self) -> RenderableType:
        table = Table(*COLUMNS, title=self.title(), title_justify="left")
        for row in self.rows():
            table.add_row(*row)
        parts: list[RenderableType] = [table]
        if self.outcome():
            parts.append(Text(self.outcome(), style="bold"))
        return Group(*parts)

    def _repr_html_(self) -> str:
        outcome = f"<p><b>{html.escape(self.outcome())}</b></p>" if self.outcome() else ""
        where = "" if self.journal.url == default_url() else f", journal={self.journal.url!r}"
        call = html.escape(f"notebook.rewind({self.thread_id!r}, CHECKPOINT{where})", quote=False)
        hint = (
            f"<p style='color:#666'>rewind the world: <code>{call}</code>; with the graph, "
            f"<code>langchain_goex.rewind(graph, config)</code> also says where to resume</p>"
        )
        return f"{html_table(self.title(), COLUMNS, self.rows())}{outcome}{hint}"

    def __repr__(self) -> str:
        lines = [self.title(), *("  ".join(row) for row in self.rows())]
        if self.outcome():
            lines.append(self.outcome())
        return "\n".join(lines)


def thread(thread_id: str, *, journal: Journal | str | None = None) -> ThreadView:
    """The thread's checkpoints and tool calls, ready to display."""
    return ThreadView(thread_id, journal=journal)


def checkpoint_of(
    thread_id: str, checkpoint_id: str, *, journal: Journal | str | None = None
) -> Checkpoint:
    """The checkpoint `checkpoint_id` of the thread, at the graph level the journal knows it
    at (the root graph for one no tool call ran after)."""
    known = thread_checkpoints(thread_id, journal=journal)
    found = next((c for c in known if c.checkpoint_id == checkpoint_id), None)
    return Checkpoint(
        thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        checkpoint_ns=found.checkpoint_ns if found else "",
        created_at=found.created_at if found else None,
    )


def rewind(
    thread_id: str,
    checkpoint_id: str,
    *,
    journal: Journal | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_irreversible: OnIrreversible = "stop",
) -> ThreadView:
    """Bring the world back to the checkpoint `checkpoint_id` of the thread (see
    `goex_tools.threads.rewind`), then show the thread again. A rewind that stops (a
    conflict, an irreversible or pending step) is shown, not raised."""
    store = get_journal(journal)
    point = checkpoint_of(thread_id, checkpoint_id, journal=store)
    try:
        report = rewind_thread(
            point, journal=store, dry_run=dry_run, force=force, on_irreversible=on_irreversible
        )
    except RollbackFailed as exc:
        failed = exc.report if isinstance(exc.report, RewindReport) else None
        return ThreadView(thread_id, journal=store, report=failed, error=str(exc))
    return ThreadView(thread_id, journal=store, report=report)
