"""Running a process with a time limit and capped output, killing its whole process group."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO

from goex_tools.redaction import redact
from goex_tools.sandbox.base import Execution, Limits

TRUNCATION_MARK = "\n[output truncated by goex: limit {limit} bytes]"
SLACK = 4096  # bytes kept past the limit, so that a secret the limit cuts is masked whole


class _CappedReader(threading.Thread):
    """Drains a pipe, keeping at most `limit` (+ slack) bytes, so a chatty process never
    blocks."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.limit = limit
        self.kept = bytearray()
        self.seen = 0

    @property
    def truncated(self) -> bool:
        return self.seen > self.limit

    def run(self) -> None:
        while chunk := self.pipe.read(65536):
            self.seen += len(chunk)
            room = self.limit + SLACK - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self) -> str:
        return capped_text(bytes(self.kept), self.limit)


def capped_text(data: bytes, limit: int) -> str:
    """`data` as text, secrets masked, cut to `limit` bytes with a mark if longer.

    Masked before cutting, so that a secret the limit cuts in two is not half shown
    (`data` should run a little past the limit for that).
    """
    text = str(redact(data.decode("utf-8", errors="replace")))
    if len(data) <= limit:
        return text
    cut = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    return cut + TRUNCATION_MARK.format(limit=limit)


def run_capped(
    argv: Sequence[str],
    limits: Limits,
    *,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> Execution:
    """Run `argv` in a new session; kill the session's process group on timeout and at the end."""
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [_CappedReader(proc.stdout, limits.output_limit)]
    readers.append(_CappedReader(proc.stderr, limits.output_limit))
    for reader in readers:
        reader.start()
    try:
        timed_out = not _wait(proc, limits.timeout)
    finally:
        _kill_group(proc.pid)  # leftovers of a finished command die too
        proc.wait()
    for reader in readers:
        reader.join(timeout=5)
    out, err = readers
    return Execution(
        exit_code=None if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        seconds=time.monotonic() - start,
    )


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the process to exit; False on timeout. A pidfd wakes at once on exit
    (Popen.wait with a timeout polls with sleeps of up to 50 ms)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return bool(ready)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def clean_env(home: str) -> dict[str, str]:
    """The environment a command gets: no inherited variables, so no inherited secrets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
