"""What looking at a long conversation costs: the points of a thread with the calls made
after each (`goex show --thread`, `notebook.thread`) and a rewind's plan, against reading the
thread's steps from the journal (what both must do anyway), measured in the same run,
interleaved. The thread: runs of 10 tool calls, each after a checkpoint of its own (UUIDv6
ids, as LangGraph makes them), the way a long agent conversation is journaled.

Targets: the listing costs under 3x the read (each point's calls are counted by bisection;
a made_after test per point and call took 2.2 s for 400 calls), the plan under 2x.

Run: .venv/bin/python -m benchmarks.bench_threads [--quick]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from langgraph.checkpoint.base.id import uuid6

import goex_tools as goex
from benchmarks.harness import Report, interleaved
from goex_tools.model import Reversibility, Run, Step, StepStatus
from goex_tools.threads import Checkpoint, plan_rewind, thread_checkpoints, thread_steps

THREAD = "bench-thread"


def main(quick: bool = False) -> None:
    rounds = 3 if quick else 7
    where = Path(tempfile.mkdtemp(prefix="goex-bench-threads-"))
    report = Report("threads")
    try:
        for calls in (100, 1000) if quick else (100, 1000, 3000):
            _measure(
                report, goex.Journal(f"sqlite:///{where / f'journal-{calls}.db'}"), calls, rounds
            )
    finally:
        shutil.rmtree(where, ignore_errors=True)
    report.write()


def _measure(report: Report, journal: goex.Journal, calls: int, rounds: int) -> None:
    point = Checkpoint(thread_id=THREAD, checkpoint_id=_thread(journal, calls))
    read, listing, plan = interleaved(
        [
            lambda: thread_steps(THREAD, journal=journal),
            lambda: thread_checkpoints(THREAD, journal=journal),
            lambda: plan_rewind(point, journal=journal),
        ],
        rounds=rounds,
    )
    extra = {"baseline": "thread_steps (the journal read)", "calls": calls}
    report.compare("thread points", f"{calls} calls", read, listing, max_ratio=3.0, extra=extra)
    report.compare("rewind plan", f"{calls} calls", read, plan, max_ratio=2.0, extra=extra)
    journal.close()


def _thread(journal: goex.Journal, calls: int) -> str:
    """Journal a thread of `calls` tool calls; returns the checkpoint the first ran after."""
    checkpoints = []
    for _ in range(calls // 10):
        run = journal.create_run(Run(metadata={"thread_id": THREAD}))
        for step in range(10):
            checkpoint = str(uuid6(clock_seq=step))
            checkpoints.append(checkpoint)
            place = {
                "thread_id": THREAD,
                "checkpoint_id": checkpoint,
                "checkpoints": {"": checkpoint},
            }
            journal.add_step(
                Step(
                    run_id=run.id,
                    tool="opaque",
                    domain="langchain",
                    reversibility=Reversibility.IRREVERSIBLE,
                    status=StepStatus.IRREVERSIBLE,
                    effect={"thread": place},
                )
            )
    return checkpoints[0]


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
