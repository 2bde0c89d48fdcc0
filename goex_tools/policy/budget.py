"""Per-run budgets, counted from the run's journaled steps and the `effect` domains record.

The journal is the only source: another process continuing the same run (`run_id=`) sees
the same usage. An action is refused once the budget it draws on is spent; the last action
before that may overshoot a rows or bytes budget, since its size is known only afterwards
(a per-action row limit is `sql.max_rows_changed`, measured before the effect).
"""

from __future__ import annotations

import threading

from pydantic import BaseModel

from goex_tools.journal import Journal
from goex_tools.model import Proposal, Reversibility, Step, StepStatus
from goex_tools.policy.config import Budgets

READ_ONLY_FS_TOOLS = frozenset({"read_file", "list_dir", "stat_path"})


class Usage(BaseModel):
    steps: int = 0
    rows_changed: int = 0
    bytes_written: int = 0
    http_calls: int = 0


def usage(steps: list[Step]) -> Usage:
    """What these steps used. Refused steps used nothing; failed ones may have."""
    used = Usage()
    for step in steps:
        add_step(used, step)
    return used


def add_step(used: Usage, step: Step) -> None:
    if step.status is StepStatus.REFUSED or step.reversibility is Reversibility.CONTAINER:
        return
    used.steps += 1
    used.rows_changed += _int(step.effect.get("rows_changed"))
    used.bytes_written += _int(step.effect.get("bytes_written"))
    if step.domain == "http":
        used.http_calls += 1


class UsageTracker:
    """A run's usage, reading only the steps journaled since the last look.

    A step's effect is final once it is no longer pending, so the usage of the leading
    settled steps is kept and only later steps are read again: a decision costs the same in
    a run's thousandth step as in its first.
    """

    def __init__(self) -> None:
        self._settled: dict[tuple[str, str], tuple[int, Usage]] = {}
        self._lock = threading.Lock()

    def usage(self, journal: Journal, run_id: str) -> Usage:
        key = (journal.url, run_id)
        with self._lock:
            seq, settled = self._settled.get(key, (0, Usage()))
        settled = settled.model_copy()
        total = settled.model_copy()
        settling = True
        for step in journal.steps(run_id, after_seq=seq):
            add_step(total, step)
            settling = settling and step.status is not StepStatus.PENDING
            if settling and step.seq is not None:
                add_step(settled, step)
                seq = step.seq
        with self._lock:
            self._settled[key] = (seq, settled)
        return total


def over_budget(budgets: Budgets, used: Usage, proposal: Proposal) -> tuple[str, str] | None:
    """(budget name, reason) if `proposal` would draw on a spent budget, else None."""
    checks = [(budgets.max_steps, used.steps, "max_steps", "steps")]
    if proposal.domain == "sql" and _writes_sql(proposal):
        checks.append(
            (budgets.max_rows_changed, used.rows_changed, "max_rows_changed", "rows changed")
        )
    if proposal.domain == "fs" and proposal.tool not in READ_ONLY_FS_TOOLS:
        checks.append(
            (budgets.max_bytes_written, used.bytes_written, "max_bytes_written", "bytes written")
        )
    if proposal.domain == "http":
        checks.append((budgets.max_http_calls, used.http_calls, "max_http_calls", "HTTP calls"))
    for limit, spent, name, what in checks:
        if limit is not None and spent >= limit:
            return f"budgets.{name}", f"the run's budget of {limit} {what} is spent ({spent} used)"
    return None


def _writes_sql(proposal: Proposal) -> bool:
    statements = proposal.predicted.get("statements") or []
    return any(s.get("kind") != "read" for s in statements) or not statements


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
