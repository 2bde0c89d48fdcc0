"""A service process (Prism, oidc-provider) for the duration of a test: started, waited
for, stopped."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running(
    command: list[str], *, log: Path, ready: bytes, timeout: float, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (output to `log`) until the block ends; enter once `ready` appears in
    the log. RuntimeError with the log's tail if it exits or takes longer than `timeout`."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while ready not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:2]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
