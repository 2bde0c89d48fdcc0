"""Reviewing and rolling back a run from a notebook (or a terminal), without a framework.

    from goex_tools import notebook
    notebook.show(run_id)                   # the steps as a table, each with what it changed
    notebook.rollback(run_id, steps=1)      # undo the last tool call; shows the run again
    notebook.rollback(run_id)               # undo the whole run
    notebook.thread(thread_id)              # a conversation's checkpoints and tool calls
    notebook.rewind(thread_id, checkpoint)  # the world as it was at that checkpoint

A `RunView` renders as an HTML table in Jupyter and as a rich table in a terminal. What a
step changed comes from its domain: a unified diff for files, rows per table for SQL, the
request and its status for HTTP.
"""

from __future__ import annotations

import html
from typing import NamedTuple
from uuid import UUID

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from goex_tools.errors import GoexError, RollbackFailed
from goex_tools.journal import Journal, default_url
from goex_tools.model import Reversibility, Run, Step, StepStatus
from goex_tools.rollback import RollbackReport, top_level
from goex_tools.rollback import rollback as rollback_run
from goex_tools.runtime import get_journal
from goex_tools.tables import html_table
from goex_tools.thread_view import ThreadView as ThreadView
from goex_tools.thread_view import rewind as rewind
from goex_tools.thread_view import thread as thread

__all__ = [
    "Change",
    "RunView",
    "ThreadView",
    "call_order",
    "change_of",
    "rewind",
    "rollback",
    "show",
    "shown_steps",
    "step_numbers",
    "thread",
]

COLUMNS = ("#", "tool", "domain", "status", "what changed", "undo")
_EFFECTS = frozenset(  # steps that changed the world (and may have been undone since)
    {
        StepStatus.APPLIED,
        StepStatus.IRREVERSIBLE,
        StepStatus.COMPENSATING,
        StepStatus.COMPENSATED,
        StepStatus.COMPENSATION_FAILED,
    }
)
_EFFECTFUL = frozenset({Reversibility.EXACT, Reversibility.SEMANTIC, Reversibility.IRREVERSIBLE})


class RunView:
    """A run's steps as a table with their changes, and (after a rollback) what was undone."""

    def __init__(
        self,
        run_id: str | UUID,
        *,
        journal: Journal | str | None = None,
        report: RollbackReport | None = None,
        error: str | None = None,
    ) -> None:
        self.journal = journal if isinstance(journal, Journal) else get_journal(journal)
        self.run: Run = self.journal.get_run(str(run_id))
        self.steps: list[Step] = self.journal.steps(self.run.id)
        self.changes = {step.id: change_of(step, self.journal) for step in self.steps}
        self.report = report
        self.error = error
        self.shown = shown_steps(self.steps)
        self.numbers = step_numbers(self.steps, self.shown)

    def rows(self) -> list[tuple[str, ...]]:
        """One row per step shown (COLUMNS), children indented under their parent.

        `#` numbers the tool calls 1..N as `rollback(steps=N)` counts them; the effects of a
        call that made several are N.1, N.2, ... A framework's tool-call container is left
        out when it has child steps; one without children (it failed before any effect) shows.
        """
        shown = self.shown
        visible = {s.id for s in shown}
        by_id = {s.id: s for s in self.steps}
        rows: list[tuple[str, ...]] = []
        for step in shown:
            depth, parent = 0, step.parent_id
            while parent is not None and parent in by_id:
                depth += parent in visible
                parent = by_id[parent].parent_id
            status = step.status.value + (f": {step.error}" if step.error else "")
            undo = step.undo_summary
            tool = "  " * depth + step.tool
            summary = self.changes[step.id].summary
            rows.append((self.numbers[step.id], tool, step.domain, status, summary, undo))
        return rows

    def title(self) -> str:
        return f"run {self.run.id} ({self.run.name}): {self.run.status.value}"

    def outcome(self) -> str:
        """What the rollback did, and how much of the run is undone now (whole-run tally)."""
        if self.report is None and self.error is None:
            return ""
        outcomes = self.report.outcomes if self.report is not None else []
        done = sum(o.outcome in ("compensated", "would_compensate") for o in outcomes)
        verb = "would undo" if self.report is not None and self.report.dry_run else "undid"
        effects = [s for s in self.steps if s.status in _EFFECTS and s.reversibility in _EFFECTFUL]
        undone = sum(s.status is StepStatus.COMPENSATED for s in effects)
        tally = f"{undone} of the run's {len(effects)} effect(s) undone so far"
        if self.error:
            stopped = "" if self.error.startswith("rollback stopped") else "rollback stopped: "
            return f"{stopped}{self.error} ({verb} {done} step(s) before; {tally})"
        if not outcomes:
            return f"{verb} 0 step(s): nothing left to undo ({tally})"
        semantic = sum(
            o.undo == "semantic" and o.outcome in ("compensated", "would_compensate")
            for o in outcomes
        )
        approx = f" ({semantic} of them only semantically)" if semantic else ""
        return f"{verb} {done} step(s) in this rollback{approx}; {tally}"

    def details(self) -> list[tuple[Step, str]]:
        """The steps that have more to show than a line (file diffs, changed rows), with that
        text."""
        return [(s, self.changes[s.id].detail) for s in self.shown if self.changes[s.id].detail]

    def _heading(self, step: Step) -> str:
        return f"#{self.numbers[step.id]} {step.tool} ({step.status.value})"

    def __rich__(self) -> RenderableType:
        table = Table(*COLUMNS, title=self.title(), title_justify="left")
        for row in self.rows():
            table.add_row(*row[:-1], Text(row[-1], overflow="ellipsis", no_wrap=True))
        parts: list[RenderableType] = [table]
        for step, detail in self.details():
            parts.append(Text(self._heading(step), style="bold"))
            parts.append(Syntax(detail, "diff", theme="ansi_dark", background_color="default"))
        if self.outcome():
            parts.append(Text(self.outcome(), style="bold"))
        return Group(*parts)

    def _repr_html_(self) -> str:
        diffs = "".join(
            f"<details><summary>{html.escape(self._heading(step))}: changes</summary>"
            f"<pre>{html.escape(detail)}</pre></details>"
            for step, detail in self.details()
        )
        outcome = f"<p><b>{html.escape(self.outcome())}</b></p>" if self.outcome() else ""
        where = "" if self.journal.url == default_url() else f", journal={self.journal.url!r}"
        whole, last = (
            html.escape(f"notebook.rollback({self.run.id!r}{more}{where})", quote=False)
            for more in ("", ", steps=N")
        )
        hint = (
            f"<p style='color:#666'>undo: <code>{whole}</code> (whole run) or "
            f"<code>{last}</code> (last N tool calls)</p>"
        )
        return f"{html_table(self.title(), COLUMNS, self.rows())}{diffs}{outcome}{hint}"

    def __repr__(self) -> str:
        lines = [self.title(), *("  ".join(row) for row in self.rows())]
        for step, detail in self.details():
            lines += [self._heading(step), detail]
        if self.outcome():
            lines.append(self.outcome())
        return "\n".join(lines)


def show(run_id: str | UUID, *, journal: Journal | str | None = None) -> RunView:
    """The run's steps, ready to display (the last expression of a cell, or `print`)."""
    return RunView(run_id, journal=journal)


def rollback(
    run_id: str | UUID,
    *,
    steps: int | None = None,
    journal: Journal | str | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> RunView:
    """Undo the whole run, or its last `steps` tool calls, then show the run again.

    A rollback that stops (a conflict, an irreversible step) is shown, not raised: the view
    says where it stopped and what was undone before.
    """
    store = journal if isinstance(journal, Journal) else get_journal(journal)
    try:
        report = rollback_run(run_id, steps=steps, journal=store, dry_run=dry_run, force=force)
    except RollbackFailed as exc:
        return RunView(run_id, journal=store, report=exc.report, error=str(exc))
    return RunView(run_id, journal=store, report=report)


class Change(NamedTuple):
    """What a step changed, as the notebook shows it: a one-line `summary` and a `detail` (a
    unified diff, rows before and after)."""

    summary: str  # one line
    detail: str = ""  # e.g. a unified diff


def change_of(step: Step, journal: Journal) -> Change:
    """What a step changed (or, once compensated, had changed), as its domain tells it."""
    if step.reversibility is Reversibility.CONTAINER:
        return Change("")
    effect = step.effect
    predicted = effect.get("predicted", {})
    if step.domain == "fs" and step.compensation is not None:
        return _fs_change(step, journal)
    if step.domain == "sql" and "tables" in effect:
        counts = {
            table: ", ".join(f"{n} {what}" for what, n in kinds.items() if n)
            for table, kinds in effect["tables"].items()
        }
        summary = "; ".join(f"{table}: {n}" for table, n in counts.items())
        return Change(summary or "no rows changed", _sql_rows(step, counts))
    if step.domain == "http" and predicted:
        status = effect.get("status_code")
        answer = f" -> {status}" if status is not None else ""
        return Change(f"{predicted.get('method', '')} {predicted.get('path', '')}{answer}")
    return Change("")


def _fs_change(step: Step, journal: Journal) -> Change:
    from goex_tools.domains.fs import diff

    try:
        files = diff(step.id, journal=journal).files
    except (GoexError, OSError, ValueError) as exc:
        return Change(f"(no diff: {exc})")
    summary = ", ".join(f"{f.change} {f.path}" for f in files) or "no changes"
    detail = "\n".join(f.diff.rstrip("\n") for f in files if f.diff)
    return Change(summary, detail)


def _sql_rows(step: Step, counts: dict[str, str]) -> str:
    """The rows a SQL step changed, each before (-) and after (+), as its confirm callback
    saw them (the sample its result kept; a result too large to keep shows none)."""
    output = step.output if isinstance(step.output, dict) else {}
    tables = (output.get("changes") or {}).get("tables") or {}
    lines: list[str] = []
    for table, changes in tables.items():
        lines.append(f"{table}: {counts.get(table, '')}")
        for row in changes.get("rows", []):
            if row.get("before") is not None:
                lines.append(f"- {row['before']!r}")
            if row.get("after") is not None:
                lines.append(f"+ {row['after']!r}")
        if changes.get("truncated"):
            lines.append("  (more rows changed than are shown)")
    return "\n".join(lines)


def shown_steps(steps: list[Step]) -> list[Step]:
    """The steps a review shows, each tool call's together in the order the calls began: a
    tool-call container with child steps is left out (its children say what it did)."""
    parents = {s.parent_id for s in steps if s.parent_id}
    shown = [
        s for s in steps if s.reversibility is not Reversibility.CONTAINER or s.id not in parents
    ]
    order = call_order(steps)
    shown.sort(key=lambda s: (order[s.id], s.seq or 0))
    return shown


def call_order(steps: list[Step]) -> dict[str, int]:
    """Each step's tool call's number (1..N, in the order the calls began)."""
    top = top_level(steps)
    calls = {call: i for i, call in enumerate(dict.fromkeys(top[s.id] for s in steps), 1)}
    return {s.id: calls[top[s.id]] for s in steps}


def step_numbers(steps: list[Step], shown: list[Step]) -> dict[str, str]:
    """Each shown step's number: its tool call's (1..N, as `rollback(steps=N)` counts), and
    N.1, N.2, ... for the effects under a call, unless the call shows as one row."""
    top, calls = top_level(steps), call_order(steps)
    under: dict[str, list[str]] = {}
    for step in shown:
        if step.id != top[step.id]:
            under.setdefault(top[step.id], []).append(step.id)
    numbers: dict[str, str] = {}
    for step in shown:
        call = top[step.id]
        members = under.get(call, [])
        if step.id == call or (len(members) == 1 and call not in {s.id for s in shown}):
            numbers[step.id] = str(calls[call])
        else:
            numbers[step.id] = f"{calls[call]}.{members.index(step.id) + 1}"
    return numbers
