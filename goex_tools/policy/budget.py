"""Per-run budgets, taken from the journal's budget ledger before each effect.

A step takes its share before anything happens, with a compare-and-set in the journal
(`goex_tools.journal_budgets`), so at most the budget runs however many threads or
processes call tools at once:

- a step and an HTTP call are taken when the gate allows the action;
- rows changed and bytes written are taken when the domain knows them and before they become
  permanent (`StepHandle.charge`: the rows the capture saw before COMMIT, trigger writes and
  cascades included; the files a command wrote in its overlay, before they reach the
  workspace). If they do not fit, the step is refused and nothing of it is applied.

Usage an effect reports without charging it first (a custom `@reversible` tool) is counted
when the step ends, and may overshoot. The ledger lives in the journal, so another process
continuing the same run sees the same usage.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pydantic import BaseModel

from goex_tools.errors import BudgetSpent
from goex_tools.journal import Journal
from goex_tools.journal_budgets import Baseline, BudgetLedger, Shortfall
from goex_tools.model import JSONDict, Proposal, Reversibility, Step, StepStatus
from goex_tools.policy.config import Budgets
from goex_tools.redaction import redact

if TYPE_CHECKING:
    from goex_tools.runtime import RunContext

READ_ONLY_FS_TOOLS = frozenset({"read_file", "list_dir", "stat_path"})
WHAT = {
    "steps": "steps",
    "rows_changed": "rows changed",
    "bytes_written": "bytes written",
    "http_calls": "HTTP calls",
}
METERED = ("rows_changed", "bytes_written")  # known only once the effect is worked out


class Usage(BaseModel):
    """What a run used of its budgets: steps, rows changed, bytes written, HTTP calls."""

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


class RunBudgets:
    """A policy's budgets over the ledgers of the journals its runs write to."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.limits = {
            name: limit for name in WHAT if (limit := getattr(budgets, f"max_{name}")) is not None
        }
        self._ledgers: dict[int, BudgetLedger] = {}
        self._lock = threading.Lock()

    def spent(self, run: RunContext, proposal: Proposal) -> tuple[str, str] | None:
        """(rule, reason) if `proposal` draws on a budget already spent (a quick look; the
        taking itself is `take_start` and `charge`)."""
        used = self._ledger(run.journal).used(run.id)
        for name in drawn_on(proposal):
            limit = self.limits.get(name)
            if limit is not None and used[name] >= limit:
                return _rule(name), _spent(name, limit, used[name])
        return None

    def take_start(self, run: RunContext, proposal: Proposal) -> tuple[str, str] | None:
        """Take a step (and an HTTP call) for an allowed action; (rule, reason) if spent."""
        amounts = {"steps": 1, "http_calls": int(proposal.domain == "http")}
        try:
            self._ledger(run.journal).take(run.id, amounts, self.limits)
        except Shortfall as short:
            return _rule(short.name), _spent(short.name, self.limits[short.name], short.used)
        return None

    def charge(
        self, step: Step, effect: JSONDict, run: RunContext, *, charged: JSONDict, strict: bool
    ) -> JSONDict:
        """Take what `effect` says beyond what was `charged`; returns the new charged total.

        `strict`: raise BudgetSpent (taking nothing) if a budget cannot cover it; otherwise
        count it anyway (usage found after the fact)."""
        amounts = {name: _int(effect.get(name)) for name in METERED}
        more = {name: amounts[name] - _int(charged.get(name)) for name in METERED}
        more = {name: n for name, n in more.items() if n > 0}
        if not more:
            return {**charged, **amounts}
        ledger = self._ledger(run.journal)
        try:
            ledger.take(run.id, more, self.limits if strict else {})
        except Shortfall as short:
            limit = self.limits[short.name]
            reason = (
                f"the run's budget of {limit} {WHAT[short.name]} has {max(limit - short.used, 0)} "
                f"left ({short.used} used); this step needs {more[short.name]}"
            )
            message = f"{step.tool} refused by rule {_rule(short.name)!r}: {reason}"
            raise BudgetSpent(
                str(redact(message)), step_id=step.id, rule=_rule(short.name), reason=reason
            ) from None
        return {**charged, **amounts}

    def _ledger(self, journal: Journal) -> BudgetLedger:
        with self._lock:
            ledger = self._ledgers.get(id(journal))
            if ledger is None or ledger.journal.engine is not journal.engine:
                ledger = BudgetLedger(journal, tuple(WHAT), _baseline(journal))
                self._ledgers[id(journal)] = ledger
            return ledger


def drawn_on(proposal: Proposal) -> list[str]:
    """The budgets an action draws on."""
    names = ["steps"]
    if proposal.domain == "sql" and _writes_sql(proposal):
        names.append("rows_changed")
    if proposal.domain == "fs" and proposal.tool not in READ_ONLY_FS_TOOLS:
        names.append("bytes_written")
    if proposal.domain == "http":
        names.append("http_calls")
    return names


def _baseline(journal: Journal) -> Baseline:
    def start(run_id: str) -> dict[str, int]:
        return usage(journal.steps(run_id)).model_dump()

    return start


def _rule(name: str) -> str:
    return f"budgets.max_{name}"


def _spent(name: str, limit: int, used: int) -> str:
    return f"the run's budget of {limit} {WHAT[name]} is spent ({used} used)"


def _writes_sql(proposal: Proposal) -> bool:
    statements = proposal.predicted.get("statements") or []
    return any(s.get("kind") != "read" for s in statements) or not statements


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
