"""Shared measuring helpers: repeated timings, medians and spreads, ratios, a JSON record.

Every figure is a ratio against a baseline measured in the same run, so results compare
across machines; targets are printed as met or MISSED, never tuned away.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass
class Timing:
    """Seconds per operation over repeated rounds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        if len(self.samples) < 4:
            return (max(self.samples) - min(self.samples)) / self.median
        q = statistics.quantiles(self.samples, n=4)
        return (q[2] - q[0]) / self.median


def measure(
    operation: Callable[[], Any],
    *,
    rounds: int = 7,
    per_round: int = 1,
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Time `operation` (`per_round` calls a round, each round after `setup`)."""
    samples = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        start = time.perf_counter()
        for _ in range(per_round):
            operation()
        samples.append((time.perf_counter() - start) / per_round)
    return Timing(samples)


def interleaved(
    operations: list[Callable[[], Any]],
    *,
    rounds: int = 7,
    per_round: int = 1,
    setups: list[Callable[[], Any] | None] | None = None,
) -> list[Timing]:
    """Time each operation once per round, in turn, so that load from elsewhere (and the
    machine's state: caches, writeback) hits all of them alike, not the one measured last.
    `setups[i]`, if given, runs (untimed) before each timing of `operations[i]`."""
    samples: list[list[float]] = [[] for _ in operations]
    prepare = setups or [None] * len(operations)
    for _ in range(rounds):
        for operation, setup, kept in zip(operations, prepare, samples, strict=True):
            if setup is not None:
                setup()
            start = time.perf_counter()
            for _ in range(per_round):
                operation()
            kept.append((time.perf_counter() - start) / per_round)
    return [Timing(s) for s in samples]


@dataclass
class Row:
    benchmark: str
    case: str
    baseline_s: float
    goex_s: float
    spread: float
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.goex_s / self.baseline_s if self.baseline_s else float("inf")


class Report:
    """Collects rows, prints a table and writes `benchmarks/results/<name>.json`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[Row] = []

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        verdict = "" if row.met is None else ("met" if row.met else "MISSED")
        print(
            f"{row.benchmark:<22} {row.case:<38} baseline {_ms(row.baseline_s):>10} "
            f"goex {_ms(row.goex_s):>10}  x{row.ratio:7.2f}  ±{row.spread:5.0%}  "
            f"{row.target} {verdict}",
            flush=True,
        )
        return row

    def compare(
        self,
        benchmark: str,
        case: str,
        base: Timing,
        timed: Timing,
        *,
        max_ratio: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Row:
        """Add the row for `timed` against `base`; with `max_ratio`, a target on their ratio."""
        return self.add(
            Row(
                benchmark=benchmark,
                case=case,
                baseline_s=base.median,
                goex_s=timed.median,
                spread=timed.spread,
                target=f"< {max_ratio:g}x baseline" if max_ratio else "",
                met=timed.median < max_ratio * base.median if max_ratio else None,
                extra={"baseline_spread": base.spread, **(extra or {})},
            )
        )

    def write(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        data = {
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "rows": [asdict(r) | {"ratio": r.ratio} for r in self.rows],
        }
        path.write_text(json.dumps(data, indent=2))
        missed = [r for r in self.rows if r.met is False]
        for r in missed:
            print(f"MISSED target: {r.benchmark} / {r.case}: {r.target}")
        print(f"wrote {path}")
        return path


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
