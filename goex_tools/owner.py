"""Which process owns a step, and whether that process is still running.

A step records the process that executes it (or compensates it) as an owner tag:

    host:pid/boot=<boot id>/pidns=<pid namespace inode>/timens=<time namespace>/start=<ticks>

A host name and a pid alone name a process badly: pids are reused, a container's agent is pid 1
in its own pid namespace, and a host name says nothing about a reboot. The kernel's boot id,
the pid namespace, the pid in it and the process's start time (clock ticks since boot) name
one process that can never come back. `liveness` answers from that: `alive`, `dead` (proven:
no process with that identity exists, or its pid now belongs to another process), or `unknown`
(another machine, a reboot, a namespace this process cannot see, no /proc): never a guess.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

__all__ = [
    "Identity",
    "Liveness",
    "Verdict",
    "liveness",
    "owner_tag",
    "parse",
]

INIT_PID_NAMESPACE = 0xEFFFFFFC  # the initial pid namespace's inode (PROC_PID_INIT_INO)
PROC = Path("/proc")


class Liveness(StrEnum):
    """Whether a run's owner process still runs: alive, dead, or unknown (another machine,
    another PID namespace, a tag too old to tell)."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    """Whether an owner runs, and why we think so (for a person to read)."""

    liveness: Liveness
    reason: str


@dataclass(frozen=True)
class Identity:
    """A process, told apart from any other that reuses its pid: host, pid, boot id, PID and
    time namespaces and start time. `tag()` is what the journal records as a run's owner."""

    host: str
    pid: int
    boot: str = ""
    pidns: int = 0
    timens: int = 0
    start: int = -1

    @property
    def complete(self) -> bool:
        return bool(self.boot) and self.pidns > 0 and self.start >= 0

    def tag(self) -> str:
        if not self.complete:
            return f"{self.host}:{self.pid}"
        return (
            f"{self.host}:{self.pid}/boot={self.boot}/pidns={self.pidns}"
            f"/timens={self.timens}/start={self.start}"
        )


def owner_tag() -> str:
    """This process's owner tag (recorded with every step it journals or compensates)."""
    return _identity(os.getpid()).tag()


def parse(tag: str) -> Identity | None:
    """The identity a tag names, or None if it is not an owner tag at all."""
    head, *fields = tag.split("/")
    host, _, pid = head.rpartition(":")
    if not host or not pid.isdigit():
        return None
    values = dict(field.partition("=")[::2] for field in fields)
    try:
        return Identity(
            host=host,
            pid=int(pid),
            boot=values.get("boot", ""),
            pidns=int(values.get("pidns", 0)),
            timens=int(values.get("timens", 0)),
            start=int(values.get("start", -1)),
        )
    except ValueError:
        return None


def liveness(tag: str) -> Verdict:
    """Whether the process a tag names is still running, proven either way or `unknown`."""
    owner = parse(tag)
    if owner is None:
        return Verdict(Liveness.UNKNOWN, f"{tag!r} does not name a process")
    me = _identity(os.getpid())
    if not owner.complete:
        return Verdict(
            Liveness.UNKNOWN,
            f"{tag} was recorded without a boot id and process start time (an older goex, or "
            f"a system without /proc), so its process cannot be identified",
        )
    if not me.complete:
        return Verdict(Liveness.UNKNOWN, "this system has no /proc to look up processes in")
    if owner.boot != me.boot:
        return Verdict(
            Liveness.UNKNOWN,
            f"its process ran under another kernel boot (host {owner.host}: another machine, "
            f"or this one before a reboot)",
        )
    if owner.timens != me.timens:
        return Verdict(Liveness.UNKNOWN, "its process ran in another time namespace")
    if owner == me:
        return Verdict(Liveness.ALIVE, "it is this process")
    if owner.pidns == me.pidns:
        return _in_my_namespace(owner)
    return _in_other_namespace(owner, me)


def _in_my_namespace(owner: Identity) -> Verdict:
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return Verdict(Liveness.DEAD, f"no process {owner.pid} exists any more")
    except PermissionError:
        pass  # it exists, owned by someone else: its start time tells whether it is ours
    stat = _stat(PROC / str(owner.pid))
    if stat is None:
        return Verdict(Liveness.UNKNOWN, f"process {owner.pid} exists but cannot be inspected")
    state, start = stat
    if start != owner.start:
        return Verdict(Liveness.DEAD, f"pid {owner.pid} now belongs to another process")
    if state in ("Z", "X"):
        return Verdict(Liveness.DEAD, f"process {owner.pid} has exited (a zombie)")
    return Verdict(Liveness.ALIVE, f"process {owner.pid} is running")


def _in_other_namespace(owner: Identity, me: Identity) -> Verdict:
    """Look for the owner among the processes this one can see (a namespace below ours)."""
    seen_namespace = False
    complete_view = os.geteuid() == 0  # root reads every process's namespace link
    try:
        entries = [e for e in os.listdir(PROC) if e.isdigit()]
    except OSError:
        return Verdict(Liveness.UNKNOWN, "cannot list /proc")
    for entry in entries:
        proc = PROC / entry
        try:
            if os.stat(proc / "ns" / "pid").st_ino != owner.pidns:
                continue
        except OSError:
            # Unreadable: a process with a single pid is in our own namespace, not the
            # owner's; any other (or one gone meanwhile) leaves our view incomplete.
            pids = _ns_pids(proc)
            complete_view = complete_view and (len(pids) == 1 or not (proc / "stat").exists())
            continue
        seen_namespace = True
        stat = _stat(proc)
        pids = _ns_pids(proc)
        if stat is None or stat[1] != owner.start or not pids or pids[-1] != owner.pid:
            continue
        if stat[0] in ("Z", "X"):
            return Verdict(Liveness.DEAD, f"process {owner.pid} has exited (a zombie)")
        return Verdict(Liveness.ALIVE, f"process {owner.pid} of pid namespace {owner.pidns} runs")
    if complete_view and (seen_namespace or me.pidns == INIT_PID_NAMESPACE):
        return Verdict(
            Liveness.DEAD, f"no process {owner.pid} runs in pid namespace {owner.pidns} any more"
        )
    return Verdict(
        Liveness.UNKNOWN,
        f"its process ran in pid namespace {owner.pidns} (a container?), which this process "
        f"cannot see into",
    )


def _stat(proc: Path) -> tuple[str, int] | None:
    """A process's state letter and start time (clock ticks after boot), from /proc/PID/stat."""
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _ns_pids(proc: Path) -> list[int]:
    """A process's pid in our pid namespace and in each one below, down to its own
    (/proc/PID/status NSpid); empty if unreadable."""
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(pid) for pid in line.split()[1:]]
    except (OSError, ValueError):
        return []
    return []


@cache
def _identity(pid: int) -> Identity:
    """This process's identity (cached per pid: a forked child computes its own)."""
    host = socket.gethostname()
    try:
        if os.readlink(PROC / "self") != str(pid):
            return Identity(host=host, pid=pid)  # /proc shows another pid namespace than ours
        boot = (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        pidns = os.stat(PROC / "self" / "ns" / "pid").st_ino
        stat = _stat(PROC / "self")
    except OSError:
        return Identity(host=host, pid=pid)
    try:
        timens = os.stat(PROC / "self" / "ns" / "time").st_ino
    except OSError:
        timens = 0  # kernels before 5.6 have no time namespaces
    if stat is None:
        return Identity(host=host, pid=pid)
    return Identity(host=host, pid=pid, boot=boot, pidns=pidns, timens=timens, start=stat[1])
