"""Run every benchmark: `python -m benchmarks [--quick]` (or one: `python -m benchmarks.bench_fs`).

Each prints its table and writes benchmarks/results/<name>.json; missed targets are listed.
"""

from __future__ import annotations

import sys

from benchmarks import (
    bench_fs,
    bench_http,
    bench_journal,
    bench_mcp,
    bench_sandbox,
    bench_sql,
    bench_threads,
)


def main() -> None:
    quick = "--quick" in sys.argv
    for bench in (
        bench_journal,
        bench_fs,
        bench_sql,
        bench_http,
        bench_sandbox,
        bench_mcp,
        bench_threads,
    ):
        print(f"\n== {bench.__name__} ==", flush=True)
        bench.main(quick=quick)


if __name__ == "__main__":
    main()
