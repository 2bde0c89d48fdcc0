"""Real processes for crash tests: agents killed at an exact point, and the `goex` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def python(script: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """Start `python -c script args...` in the repository (its modules importable)."""
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", script, *args], cwd=ROOT, env=ENV, text=True, **kwargs
    )


def wait_ready(proc: subprocess.Popen[str], ready: Path, timeout: float = 60) -> None:
    """Wait until the process signals `ready` (it is then parked at the point under test)."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        assert proc.poll() is None, "the process ended before reaching the point under test"
        assert time.monotonic() < deadline, f"{ready} never appeared"
        time.sleep(0.02)


def kill_when_ready(proc: subprocess.Popen[str], ready: Path) -> None:
    """SIGKILL the process at the point it signalled: a crash exactly there."""
    wait_ready(proc, ready)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def goex_command(*args: str, journal_url: str) -> list[str]:
    """The command line of `goex --journal URL --json ARGS...`."""
    return [sys.executable, "-m", "goex_tools.cli", "--journal", journal_url, "--json", *args]


def goex_cli(
    *args: str, journal_url: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`goex --journal URL --json ARGS...` in a process of its own."""
    return subprocess.run(
        goex_command(*args, journal_url=journal_url),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def goex_started(*args: str, journal_url: str) -> subprocess.Popen[str]:
    """`goex --journal URL --json ARGS...` started, its output piped."""
    return subprocess.Popen(
        goex_command(*args, journal_url=journal_url),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
