"""The journal's budget ledger: how much of each budget a run has taken.

A gate takes a step's share of a budget (a step, an HTTP call, the rows or bytes its effect
will change) before the effect, with one conditional UPDATE per budget
(`used + n <= limit`): a compare-and-set the database applies atomically, so threads and
processes sharing a journal can never together take more than a budget holds. The ledger is
its own table beside the journal's, created on first use; a run's row starts from what the
run's journaled steps had already used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from goex_tools.errors import JournalError
from goex_tools.journal import Journal
from goex_tools.journal_engine import create_tables

metadata = sa.MetaData()

budgets_table = sa.Table(
    "goex_budgets",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False),
)

Baseline = Callable[[str], Mapping[str, int]]
"""What a run used before the ledger counted it (from its journaled steps), per budget."""


class Shortfall(Exception):
    """A budget that does not cover an amount; `used` is what it had used already."""

    def __init__(self, name: str, used: int) -> None:
        super().__init__(name)
        self.name = name
        self.used = used


class BudgetLedger:
    """Per run, per budget name, the amount taken; shared by every gate on the journal.

    Its reads and writes go through the journal's transactions, so that a fault (a lock held
    too long, a full disk, a server gone) is a JournalError and the action does not run.
    """

    def __init__(self, journal: Journal, names: tuple[str, ...], baseline: Baseline) -> None:
        self.journal = journal
        self.names = names
        self._baseline = baseline
        self._opened: set[str] = set()
        self._lock = threading.Lock()
        with journal.transaction("create the budget ledger") as conn:
            create_tables(conn, metadata)

    def used(self, run_id: str) -> dict[str, int]:
        """What the run has taken of each budget so far."""
        self._open(run_id)
        query = sa.select(budgets_table.c.name, budgets_table.c.used).where(
            budgets_table.c.run_id == run_id
        )
        with self.journal.reading("read the run's budgets") as conn:
            found = {name: int(used) for name, used in conn.execute(query)}
        return {name: found.get(name, 0) for name in self.names}

    def take(self, run_id: str, amounts: Mapping[str, int], limits: Mapping[str, int]) -> None:
        """Take every amount, or none: raises Shortfall naming the first budget in `limits`
        that cannot cover its amount. Budgets without a limit are counted, never refused."""
        self._open(run_id)
        # a Shortfall rolls back what was taken before it
        with self.journal.transaction("take from the run's budgets") as conn:
            for name in sorted(n for n, amount in amounts.items() if amount):
                if not self._add(conn, run_id, name, amounts[name], limits.get(name)):
                    raise Shortfall(name, self._used(conn, run_id, name))

    def add(self, run_id: str, amounts: Mapping[str, int]) -> None:
        """Count amounts that were used without being taken first (they may overshoot)."""
        self.take(run_id, amounts, {})

    def _add(
        self, conn: Connection, run_id: str, name: str, amount: int, limit: int | None
    ) -> bool:
        row = (budgets_table.c.run_id == run_id) & (budgets_table.c.name == name)
        if limit is not None:
            row = row & (budgets_table.c.used + amount <= limit)
        done = conn.execute(
            budgets_table.update().where(row).values(used=budgets_table.c.used + amount)
        )
        return done.rowcount == 1

    def _used(self, conn: Connection, run_id: str, name: str) -> int:
        query = sa.select(budgets_table.c.used).where(
            (budgets_table.c.run_id == run_id) & (budgets_table.c.name == name)
        )
        return int(conn.execute(query).scalar() or 0)

    def _open(self, run_id: str) -> None:
        """Give the run its rows, starting from what its journaled steps used."""
        with self._lock:
            if run_id in self._opened:
                return
        query = sa.select(budgets_table.c.name).where(budgets_table.c.run_id == run_id)
        with self.journal.reading("read the run's budgets") as conn:
            present = set(conn.execute(query).scalars())
        missing = [name for name in self.names if name not in present]
        if missing:
            start = self._baseline(run_id)
            rows = [{"run_id": run_id, "name": n, "used": start.get(n, 0)} for n in missing]
            try:
                with self.journal.transaction("open the run's budgets") as conn:
                    conn.execute(budgets_table.insert(), rows)
            except JournalError as exc:
                if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                    raise
                # another gate opened it meanwhile
        with self._lock:
            self._opened.add(run_id)
