"""The cost of a command's sandbox: docker (a container on the engine DOCKER_HOST names)
against bwrap (the default), measured in the same run, interleaved.

- `sandbox.run("true")` over a small workspace's overlay: the sandbox alone;
- `Workspace.run_shell` of a command changing one file: the whole journaled step;
- where the docker backend's time goes: the engine calls of one command, each timed.

Both backends run with their default limits (a cgroup each, as root). Needs root and an
engine with the default image (`bash scripts/start-container-engine.sh`).

Run: .venv/bin/python -m benchmarks.bench_sandbox [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Report, interleaved
from goex_tools import Journal, run
from goex_tools.domains.fs import Workspace
from goex_tools.sandbox import Limits, get_sandbox
from goex_tools.sandbox.container import engine
from goex_tools.sandbox.overlay import make_layers, remove_layers

BACKENDS = ("bwrap", "docker")  # the baseline first


def main(quick: bool = False) -> None:
    rounds = 5 if quick else 15
    report = Report("sandbox")
    with tempfile.TemporaryDirectory(prefix="goex-bench-sandbox-") as tmp:
        base = Path(tmp)
        lower = base / "ws"
        lower.mkdir()
        for n in range(20):
            (lower / f"f{n}.txt").write_text(f"file {n}\n")
        bare = [_sandboxed(name, lower, base / name) for name in BACKENDS]
        bare[0](), bare[1]()  # warm: the engine's first container, caches
        bwrap, docker = interleaved(bare, rounds=rounds)
        report.compare(
            "sandbox",
            "docker vs bwrap: `true`",
            bwrap,
            docker,
            extra={"added_ms": (docker.median - bwrap.median) * 1000, "rounds": rounds},
        )
        journal = Journal(f"sqlite:///{base}/journal.db")
        steps = [_step(name, lower, base / f"store-{name}", journal) for name in BACKENDS]
        steps[0](), steps[1]()
        bwrap, docker = interleaved(steps, rounds=rounds)
        report.compare(
            "run_shell",
            "docker vs bwrap: one file changed",
            bwrap,
            docker,
            extra={"added_ms": (docker.median - bwrap.median) * 1000, "rounds": rounds},
        )
        journal.close()
        phases = _phases(bare[1], rounds)
        for name, seconds in phases.items():
            print(f"  docker phase {name:<16} {seconds * 1000:8.1f} ms (median)")
        report.rows[0].extra["docker_phases_ms"] = {k: v * 1000 for k, v in phases.items()}
    report.write()


def _sandboxed(backend: str, lower: Path, scratch: Path) -> Callable[[], None]:
    sandbox = get_sandbox(backend)
    scratch.mkdir()
    count = iter(range(10**9))

    def once() -> None:
        layers = make_layers(lower, scratch / str(next(count)))
        try:
            done = sandbox.run("true", layers, Limits())
            assert done.exit_code == 0, done.stderr
        finally:
            remove_layers(layers)

    return once


def _step(backend: str, lower: Path, store: Path, journal: Journal) -> Callable[[], None]:
    ws = Workspace(lower, store=store, sandbox=backend)

    def once() -> None:
        with run(f"bench-{backend}", journal=journal):
            done = ws.run_shell(f"echo {time.monotonic_ns()} > {backend}.txt")
        assert done.exit_code == 0, done.stderr

    return once


def _phases(command: Callable[[], None], rounds: int) -> dict[str, float]:
    """Median seconds of each engine call a docker command makes."""
    api = engine()
    taken: dict[str, list[float]] = {}
    calls = ("create_container", "start", "exec_create", "exec_start", "exec_inspect", "pause")
    calls += ("inspect_container", "remove_container")
    originals: dict[str, Any] = {name: getattr(api, name) for name in calls}

    def timed(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                taken.setdefault(name, []).append(time.perf_counter() - start)

        return call

    for name in calls:
        setattr(api, name, timed(name))
    try:
        whole = []
        for _ in range(rounds):
            start = time.perf_counter()
            command()
            whole.append(time.perf_counter() - start)
    finally:
        for name in calls:
            setattr(api, name, originals[name])
    found = {name: statistics.median(v) * len(v) / rounds for name, v in taken.items()}
    return found | {"whole command": statistics.median(whole)}


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
