"""Indexing a large OpenAPI document: GitHub's api.github.com.json (13 MB, from the
`@octokit/openapi` npm package the tests install) through `UndoRules.add_openapi`.

- cold: read, parse and infer every undo rule, caches empty; target: under 2 s.
- cached: the same content again, in a new process (the rules from the file cache).
Both against the baseline of `json.loads` of the same bytes, measured in the same run.

Run: .venv/bin/python -m benchmarks.bench_http [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from benchmarks.harness import Report, Row, measure
from goex_tools.domains.http import UndoRules, openapi
from tests.support.npm import install

TARGET_S = 2.0


def main(quick: bool = False) -> None:
    rounds = 3 if quick else 7
    document = install() / "node_modules/@octokit/openapi/generated/api.github.com.json"
    os.environ[openapi.CACHE_ENV] = tempfile.mkdtemp()
    report = Report("http")
    raw = document.read_bytes()
    base = measure(lambda: json.loads(raw), rounds=rounds)

    def cold() -> None:
        for stored in (openapi._cache_file("x").parent).glob("*.json"):
            stored.unlink()
        openapi._memory.clear()

    indexed = measure(lambda: UndoRules().add_openapi(str(document)), rounds=rounds, setup=cold)
    count = len(UndoRules().add_openapi(str(document)).rules)
    report.add(
        Row(
            benchmark="openapi (GitHub, 13 MB)",
            case=f"add_openapi, cold ({count} rules)",
            baseline_s=base.median,
            goex_s=indexed.median,
            spread=indexed.spread,
            target=f"< {TARGET_S:g} s",
            met=indexed.median < TARGET_S,
            extra={"baseline": "json.loads of the document", "rounds": rounds},
        )
    )
    cached = measure(
        lambda: UndoRules().add_openapi(str(document)),
        rounds=rounds,
        setup=openapi._memory.clear,  # as a new process: the file cache answers
    )
    report.compare(
        "openapi (GitHub, 13 MB)",
        "add_openapi, same content again",
        base,
        cached,
        max_ratio=0.5,
        extra={"baseline": "json.loads of the document", "rounds": rounds},
    )
    report.write()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
