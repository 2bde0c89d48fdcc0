"""Running a process with a time limit and capped output, killing its whole process group.

One thread does it all: it waits on the process (a pidfd, where the kernel has them) and
its two pipes at once, so no reader threads are started and joined per command.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from goex_tools.redaction import redact
from goex_tools.sandbox.base import Execution, Limits

TRUNCATION_MARK = "\n[output truncated by goex: limit {limit} bytes]"
SLACK = 4096  # bytes kept past the limit, so that a secret the limit cuts is masked whole
DRAIN_SECONDS = 5.0  # how long output is still read after the process is gone
POLL_TICK = 0.005  # seconds between exit checks where there is no pidfd to wait on
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


class Capped:
    """What a pipe delivered, keeping at most `limit` (+ slack) bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.seen = 0

    @property
    def truncated(self) -> bool:
        return self.seen > self.limit

    def add(self, chunk: bytes) -> None:
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
    out, err = Capped(limits.output_limit), Capped(limits.output_limit)
    pipes = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    cpu = 0.0
    try:
        timed_out = not _pump(proc, pipes, start + limits.timeout)
    finally:
        _kill_group(proc.pid)  # leftovers of a finished command die too
        cpu = _reap(proc)
        _pump(None, pipes, time.monotonic() + DRAIN_SECONDS)  # what they wrote before dying
        proc.stdout.close()
        proc.stderr.close()
    return Execution(
        cpu_seconds=cpu,
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        seconds=time.monotonic() - start,
        **outputs(out, err),
    )


def outputs(out: Capped, err: Capped) -> dict[str, Any]:
    """The output fields of an `Execution`, from what its two streams delivered."""
    return {
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
    }


def _pump(proc: subprocess.Popen[bytes] | None, pipes: dict[int, Capped], deadline: float) -> bool:
    """Read `pipes` (never blocking a chatty process) until `proc` exits (True) or the
    deadline passes (False); without `proc`, until both pipes are closed or the deadline."""
    pidfd = _pidfd(proc)
    poller = select.poll()
    for fd in pipes:
        poller.register(fd, _READABLE)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    open_pipes = set(pipes)
    try:
        while proc is not None or open_pipes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if proc is not None and pidfd is None:
                remaining = min(remaining, POLL_TICK)
            for fd, _ in poller.poll(remaining * 1000):
                if fd == pidfd:
                    return True
                chunk = os.read(fd, 65536)
                if chunk:
                    pipes[fd].add(chunk)
                else:
                    poller.unregister(fd)
                    open_pipes.discard(fd)
            if proc is not None and pidfd is None and proc.poll() is not None:
                return True
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(proc: subprocess.Popen[bytes] | None) -> int | None:
    """A descriptor that becomes readable when `proc` exits (Linux >= 5.3), else None
    (then exits are polled every POLL_TICK: Popen.wait with a timeout sleeps up to 50 ms)."""
    if proc is None:
        return None
    try:
        return os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return None


def _reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for `proc`; return the CPU seconds it and the descendants it waited for used."""
    if proc.returncode is not None:
        return 0.0
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # reaped elsewhere meanwhile
        proc.wait()
        return 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return float(usage.ru_utime + usage.ru_stime)


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
