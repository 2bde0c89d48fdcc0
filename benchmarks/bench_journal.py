"""Journaling overhead per tool call, and rollback throughput.

- A LangChain tool call through goex-tools vs the same raw tool call: a no-op tool and a tool
  doing real work (hashing 256 KiB and writing it to a file), on SQLite and PostgreSQL.
  Target: under 1 ms added per call on SQLite.
- A run of 1,000 steps rolled back, vs calling the same 1,000 undo functions directly.
  Target: under 2 s on SQLite.
- A run of 10,000 steps rolled back, on SQLite and on PostgreSQL. Target: under 10 s each.

Run: .venv/bin/python -m benchmarks.bench_journal [--quick]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from langchain_core.tools import StructuredTool

import goex_tools as goex
from benchmarks.harness import Report, Row, interleaved, measure

POSTGRES_URL = os.environ.get(
    "GOEX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PAYLOAD = os.urandom(256 * 1024)


def forget(key: str) -> None:
    """The undo of `noop`: nothing to restore."""


def noop(key: str) -> str:
    """Return the key: a tool that does nothing."""
    return key


def remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def hash_and_write(path: str) -> str:
    """Hash a 256 KiB payload and write it to `path`: a tool doing real work."""
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    Path(path).write_bytes(PAYLOAD)
    return digest


reversible_noop = goex.reversible(undo=forget, tool="noop")(noop)
reversible_work = goex.reversible(undo=remove, tool="hash_and_write")(hash_and_write)


def journal_overhead(report: Report, name: str, url: str, calls: int) -> None:
    journal = goex.Journal(url)
    tmp = Path(tempfile.mkdtemp())
    raw_noop = StructuredTool.from_function(noop)
    goex_noop = StructuredTool.from_function(reversible_noop)
    raw_work = StructuredTool.from_function(hash_and_write)
    goex_work = StructuredTool.from_function(reversible_work)
    counter = iter(range(10**9))

    def call(tool: StructuredTool, arg: str) -> None:
        tool.invoke({"key" if "noop" in tool.name else "path": arg})

    with goex.run("bench", journal=journal):
        for label, raw, wrapped, arg in (
            ("no-op tool", raw_noop, goex_noop, lambda: "k"),
            ("hash+write 256 KiB", raw_work, goex_work, lambda: str(tmp / f"{next(counter)}")),
        ):
            base, timed = interleaved(
                [lambda r=raw, a=arg: call(r, a()), lambda w=wrapped, a=arg: call(w, a())],
                rounds=7,
                per_round=calls,
            )
            added = timed.median - base.median
            report.add(
                Row(
                    benchmark=f"tool call ({name})",
                    case=label,
                    baseline_s=base.median,
                    goex_s=timed.median,
                    spread=timed.spread,
                    target="< 1 ms added (SQLite)" if name == "sqlite" else "",
                    met=added < 0.001 if name == "sqlite" else None,
                    extra={"added_s": added},
                )
            )
    journal.close()


def rollback_throughput(
    report: Report, name: str, url: str, steps: int, target_s: float | None, rounds: int = 5
) -> None:
    journal = goex.Journal(url)
    keys = [f"k{i}" for i in range(steps)]

    def direct() -> None:
        for key in keys:
            forget(key)

    run_ids: list[str] = []

    def record() -> None:
        with goex.run("rollback-bench", journal=journal) as run:
            for key in keys:
                reversible_noop(key)
        run_ids.append(run.id)

    base = measure(direct, rounds=rounds)
    timed = measure(
        lambda: goex.rollback(run_ids[-1], journal=journal), rounds=rounds, setup=record
    )
    report.add(
        Row(
            benchmark=f"rollback ({name})",
            case=f"run of {steps} steps",
            baseline_s=base.median,
            goex_s=timed.median,
            spread=timed.spread,
            target=f"< {target_s:g} s" if target_s else "",
            met=timed.median < target_s if target_s else None,
        )
    )
    journal.close()


def fresh_postgres_database() -> tuple[str, sa.Engine, str]:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"goex_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES_URL).set(database=name)
    return url.render_as_string(hide_password=False), admin, name


def main(quick: bool = False) -> Report:
    report = Report("journal")
    calls = 20 if quick else 200
    tmp = tempfile.mkdtemp()
    journal_overhead(report, "sqlite", f"sqlite:///{tmp}/journal.db", calls)
    pg_url, admin, name = fresh_postgres_database()
    big = 1000 if quick else 10_000
    try:
        journal_overhead(report, "postgres", pg_url, calls)
        rollback_throughput(report, "postgres", pg_url, big, None if quick else 10.0, rounds=3)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    small = 100 if quick else 1000
    rollback_throughput(
        report, "sqlite", f"sqlite:///{tmp}/rollback.db", small, None if quick else 2.0
    )
    rollback_throughput(
        report, "sqlite", f"sqlite:///{tmp}/rollback-big.db", big, None if quick else 10.0, 3
    )
    report.write()
    return report


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
