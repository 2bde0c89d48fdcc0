"""Seeded random kills (about a minute): an agent, then maybe a rollback, each SIGKILLed at a
random moment; then `recover` and `rollback`, on SQLite and PostgreSQL journals in turn.
Every trial ends in the exact starting world or in a rollback that stops and says why. A
silent wrong (goex says the run is rolled back, or journaled nothing, while the world
differs) fails the test.

GOEX_KILL_SEED and GOEX_KILL_SECONDS change the seed and the time budget."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import goex_tools as goex
from goex_tools import Journal, RollbackFailed, RunStatus
from tests.support.processes import python, wait_ready

SEED = int(os.environ.get("GOEX_KILL_SEED", "20"))
SECONDS = float(os.environ.get("GOEX_KILL_SECONDS", "50"))
START = {"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"}

AGENT = """
import random, sys
from pathlib import Path
import goex_tools as goex
from tests.support import fileops
journal, root, seed, name, ready = sys.argv[1:6]
rng = random.Random(int(seed))
names = ["a.txt", "b.txt", "c.txt"]
Path(ready).write_text("")
with goex.run(name, journal=journal):
    for i in range(rng.randint(3, 12)):
        if rng.random() < 0.4:
            name = f"new{i}.txt"
            fileops.make_file(f"{root}/{name}", f"made {i} " * rng.randint(1, 200))
            names.append(name)
        else:
            name = rng.choice(names)
            fileops.rewrite(f"{root}/{name}", f"text {i} " * rng.randint(1, 200))
"""

ROLLBACK = """
import sys
from pathlib import Path
import goex_tools as goex
journal, name, ready = sys.argv[1:4]
Path(ready).write_text("")
for run in goex.Journal(journal).list_runs(limit=1000):
    if run.name != name:
        continue
    try:
        goex.rollback(run.id, journal=journal, live=True)
    except goex.GoexError:
        pass
"""


def world(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(root.iterdir())}


def killed_at_random(
    script: str, args: list[str], ready: Path, rng: random.Random, within: float
) -> None:
    """Start the script, wait until it is under way, SIGKILL it after a random delay (it may
    have finished by then: a kill that came too late is a crash after the end)."""
    proc = python(script, *args, str(ready))
    wait_ready(proc, ready)
    time.sleep(rng.uniform(0, within))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)


def trial(base: Path, number: int, url: str) -> str:
    """One trial; returns how it ended: 'exact' or 'stopped' (an explicit report)."""
    rng = random.Random(SEED * 1000 + number)
    root = base / f"t{number}"
    root.mkdir()
    for name, text in START.items():
        (root / name).write_text(text)
    name = f"random-{number}"
    agent_seed = str(rng.randrange(10**9))
    killed_at_random(AGENT, [url, str(root), agent_seed, name], base / f"a{number}", rng, 0.12)
    if rng.random() < 0.5:
        killed_at_random(ROLLBACK, [url, name], base / f"r{number}", rng, 0.08)

    journal = Journal(url)
    runs = [r for r in journal.list_runs(limit=1000) if r.name == name]
    if not runs:  # killed before its run began: nothing may have changed
        assert world(root) == START, f"trial {number}: effects without a journaled run"
        return "exact"
    [run] = runs
    goex.recover(journal)
    # A run killed before its first step cannot tell whose it is: a person says it is gone.
    gone = not journal.steps(run.id)
    try:
        report = goex.rollback(run.id, journal=journal, live=gone)
    except RollbackFailed as failed:
        last = failed.report.outcomes[-1] if failed.report.outcomes else None
        assert last is not None and last.outcome in ("pending", "busy", "failed", "conflict")
        assert last.detail, f"trial {number}: a stop that does not say why"
        assert journal.get_run(run.id).status is RunStatus.PARTIALLY_ROLLED_BACK
        return "stopped"
    assert report.complete
    assert journal.get_run(run.id).status is RunStatus.ROLLED_BACK
    assert world(root) == START, f"trial {number} (seed {SEED}): rolled back, world differs"
    return "exact"


def test_random_kills_never_leave_a_silent_wrong(tmp_path: Path, pg_url: str) -> None:
    """Trials alternate between a SQLite journal and a PostgreSQL one."""
    Journal(pg_url).close()
    ends: list[str] = []
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline or len(ends) < 4:
        number = len(ends)
        url = pg_url if number % 2 else f"sqlite:///{tmp_path}/t{number}.db"
        Journal(url).close()
        ends.append(trial(tmp_path, number, url))
    assert ends.count("exact") >= 2  # the trials did reach the end of their rollbacks
