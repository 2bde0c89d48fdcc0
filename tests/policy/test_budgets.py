"""Run budgets under parallel tool calls: reserved in the journal before the effect, so no
number of threads calling at once can together spend more than a budget holds.

Each test starts 8 threads at one barrier, each calling a real tool in the same run (the
context copied, as agent frameworks do for parallel tool calls), and compares the world.
"""

from __future__ import annotations

import contextvars
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, StepStatus
from goex_tools.domains.fs import Workspace
from goex_tools.domains.http import HttpTool
from goex_tools.domains.sql import run_sql
from goex_tools.policy import Policy
from tests.http.service import Service
from tests.policy.sqlstate import seed, state

MakePolicy = Callable[..., Policy]
THREADS = 8


def at_once(calls: list[Callable[[], Any]]) -> list[BaseException | None]:
    """Run every call in its own thread, all released together; each one's exception."""
    barrier = threading.Barrier(len(calls))

    def one(call: Callable[[], Any]) -> BaseException | None:
        barrier.wait()
        try:
            call()
        except Exception as exc:
            return exc
        return None

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, call) for call in calls]
        return [f.result() for f in futures]


def refused(outcomes: list[BaseException | None]) -> int:
    unexpected = [o for o in outcomes if o is not None and not isinstance(o, ActionRefused)]
    assert unexpected == []
    return sum(isinstance(o, ActionRefused) for o in outcomes)


@pytest.fixture
def ws(workspace: Path, tmp_path: Path) -> Workspace:
    return Workspace(workspace, store=tmp_path / "store")


def test_budget_steps_hold_under_parallel_write_file_calls(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file("default: allow\nbudgets:\n  max_steps: 3\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        outcomes = at_once(
            [lambda i=i: ws.write_file(f"f{i}.txt", "x") for i in range(THREADS)]  # type: ignore[misc]
        )
    assert refused(outcomes) == THREADS - 3
    written = sorted(p.name for p in ws.root.glob("f*.txt"))
    assert len(written) == 3
    statuses = [s.status for s in sqlite_journal.steps(run.id)]
    assert sorted(statuses) == sorted([StepStatus.APPLIED] * 3 + [StepStatus.REFUSED] * 5)


def test_budget_bytes_hold_under_parallel_write_file_calls(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """Each write is 4 bytes, the budget 10: two fit, whatever runs at the same time."""
    gate = policy_file("default: allow\nbudgets:\n  max_bytes_written: 10\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        outcomes = at_once(
            [lambda i=i: ws.write_file(f"f{i}.txt", "abcd") for i in range(THREADS)]  # type: ignore[misc]
        )
    assert refused(outcomes) == THREADS - 2
    assert len(list(ws.root.glob("f*.txt"))) == 2
    steps = sqlite_journal.steps(run.id)
    assert sum(s.effect.get("bytes_written", 0) for s in steps if s.status.value == "applied") == 8
    assert all(s.status in (StepStatus.APPLIED, StepStatus.REFUSED) for s in steps)


def test_budget_bytes_refuse_a_command_whose_writes_do_not_fit(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """What a command writes is known after it ran in its overlay, before it reaches the
    workspace: one that would overshoot is refused then, and nothing of it is applied."""
    gate = policy_file("default: allow\nbudgets:\n  max_bytes_written: 10\n")
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        ws.write_file("a.txt", "12345678")
        with pytest.raises(ActionRefused, match=r"budgets\.max_bytes_written.*needs 3"):
            ws.run_shell("printf 123 > b.txt")
        assert ws.manifest().keys() == before.keys() | {"a.txt"}
        ws.run_shell("printf 12 > b.txt")
        with pytest.raises(ActionRefused, match="budget of 10 bytes written is spent"):
            ws.write_file("c.txt", "1")
    steps = sqlite_journal.steps(run.id)
    assert [s.status.value for s in steps] == ["applied", "refused", "applied", "refused"]
    assert steps[1].decision is not None and steps[1].decision.rule == "budgets.max_bytes_written"
    assert (ws.root / "b.txt").read_text() == "12"


def test_budget_http_calls_hold_under_parallel_requests(
    service: Service, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    service.state.reset()
    api = HttpTool()
    gate = policy_file("default: allow\nirreversible: allow\nbudgets:\n  max_http_calls: 3\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        outcomes = at_once(
            [
                lambda i=i: api.request(  # type: ignore[misc]
                    "POST", f"{service.url}/emails", json={"to": f"p{i}", "subject": "s"}
                )
                for i in range(THREADS)
            ]
        )
    assert refused(outcomes) == THREADS - 3
    assert len(httpx.get(f"{service.url}/_state").json()["emails"]) == 3


def test_budget_rows_hold_under_parallel_sql_batches(
    tmp_path: Path, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """Each batch changes 2 rows (one by a trigger), the budget 5: two fit. The rows are
    those the capture saw before COMMIT, so a trigger's writes count too."""
    url = f"sqlite:///{tmp_path}/shop.db"
    seed(url)
    run_sql(
        "CREATE TRIGGER item_log AFTER INSERT ON items BEGIN "
        "INSERT INTO audit_log (id, event) VALUES (NEW.id, 'added'); END",
        url,
    )
    gate = policy_file("default: allow\nbudgets:\n  max_rows_changed: 5\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        outcomes = at_once(
            [
                lambda i=i: run_sql(  # type: ignore[misc]
                    f"INSERT INTO items (id, name, qty) VALUES ({10 + i}, 'n{i}', 1)", url
                )
                for i in range(THREADS)
            ]
        )
    assert refused(outcomes) == THREADS - 2
    after = state(url)
    assert len(after["items"]["rows"]) == 5 + 2 and len(after["audit_log"]["rows"]) == 1 + 2
    applied = [s for s in sqlite_journal.steps(run.id) if s.status is StepStatus.APPLIED]
    assert [s.effect["rows_changed"] for s in applied] == [2, 2]


def test_budget_reserved_in_one_process_is_seen_by_another_gate(
    ws: Workspace, journal: Journal, policy_file: MakePolicy
) -> None:
    """Two gates (as two processes would build) on one journal share the run's budget, and
    steps journaled before any budget was kept count too."""
    text = "default: allow\nbudgets:\n  max_steps: 3\n"
    first, second = policy_file(text), policy_file(text)
    with goex.run("agent", journal=journal) as run:
        ws.write_file("0.txt", "0")  # no gate: nothing taken, but the step is journaled
    with goex.run(run_id=run.id, journal=journal, gate=first):
        ws.write_file("a.txt", "a")
    with goex.run(run_id=run.id, journal=journal, gate=second):
        ws.write_file("b.txt", "b")
        with pytest.raises(ActionRefused, match="budget of 3 steps is spent"):
            ws.write_file("c.txt", "c")
    assert not (ws.root / "c.txt").exists()
    assert [s.status.value for s in journal.steps(run.id)] == ["applied"] * 3 + ["refused"]


def test_budget_ledger_behind_a_held_journal_lock_is_a_journal_error(
    ws: Workspace, tmp_path: Path, policy_file: MakePolicy
) -> None:
    """The ledger is the journal's: another process holding its lock past the timeout makes
    the gate's take a JournalUnavailable (not SQLAlchemy's error), and nothing is written."""
    url = f"sqlite:///{tmp_path}/held.db"
    journal = Journal(url, timeout=0.5)
    gate = policy_file("default: allow\nbudgets:\n  max_steps: 5\n")
    with goex.run("before", journal=journal, gate=gate):
        ws.write_file("before.txt", "b")
    holder = sqlite3.connect(tmp_path / "held.db", isolation_level=None)
    try:
        for run_name in ("before", "new"):  # a run whose budgets are open, and a new one
            with goex.run(run_name, journal=journal, gate=gate):
                holder.execute("BEGIN IMMEDIATE")
                try:
                    with pytest.raises(goex.JournalUnavailable, match="budgets"):
                        ws.write_file(f"{run_name}.txt", "x")
                finally:
                    holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert sorted(p.name for p in ws.root.glob("*.txt")) == ["before.txt"]
