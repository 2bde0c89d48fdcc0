"""Resource limits of a command: rlimits inside the sandbox, a cgroup where one can be made.

Every process of the command gets hard rlimits, set by the first process inside the
sandbox: CPU seconds, file size, and (without a cgroup) data segment and processes. Where
goex may create cgroups (root, v1 or v2), the command also runs in one of its own whose
memory (swap included) and process count are capped for the command as a whole, and whose
counters tell afterwards whether a limit was hit (an out-of-memory kill, a refused fork).

`exceeded` says which limits a finished command went past; the caller then fails its step.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from goex_tools.sandbox.base import Execution, Limits

CGROUPS = Path("/sys/fs/cgroup")
PREFIX = "goex-"
_LIMITED_EXEC = (
    'ulimit -t "$1" && ulimit -f "$2" && { [ "$3" = - ] || ulimit -d "$3"; } '
    '&& { [ "$4" = - ] || ulimit -p "$4"; } || exit 126; '
    'shift 4; exec sh -c "$1" sh'
)


def wrap(command: str, limits: Limits, *, data: bool = True, processes: bool = True) -> list[str]:
    """argv that sets the rlimits, then runs `command` with `sh -c` (as it would be without).
    `data=False`, `processes=False` leave those to a cgroup, which measures the command as
    a whole (a data-segment cap also breaks programs that map large sparse regions, and a
    process rlimit counts every process of the user on the machine)."""
    blocks = -(-limits.file_size // 512)  # ulimit -f counts 512-byte blocks
    cpu = max(1, int(limits.cpu_time + 0.999))
    memory = str(limits.memory // 1024) if data else "-"  # "-": left as it is
    count = str(limits.processes) if processes else "-"
    args = [str(cpu), str(blocks), memory, count]
    return ["sh", "-c", _LIMITED_EXEC, "goex-limits", *args, command]


class Cgroup:
    """A cgroup (v1 memory + pids hierarchies, or v2) for one command; `procs` are the files
    a process writes its pid to, to join."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @property
    def procs(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    @classmethod
    def make(cls, limits: Limits) -> Cgroup | None:
        """A fresh cgroup with `limits`, or None where this process may not make one."""
        if os.geteuid() != 0:
            return None
        name = f"{PREFIX}{secrets.token_hex(6)}"
        try:
            if (CGROUPS / "cgroup.controllers").exists():
                return cls._make_v2(name, limits)
            return cls._make_v1(name, limits)
        except OSError:
            return None

    @classmethod
    def _make_v1(cls, name: str, limits: Limits) -> Cgroup | None:
        memory, pids = CGROUPS / "memory" / name, CGROUPS / "pids" / name
        if not (memory.parent / "memory.limit_in_bytes").exists():
            return None
        if not (pids.parent / "pids.max").exists() and not pids.parent.is_dir():
            return None
        cpu = CGROUPS / "cpuacct" / name
        made = cls([memory, pids, cpu] if cpu.parent.is_dir() else [memory, pids], 1)
        try:
            for directory in made.dirs:
                directory.mkdir()
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limits.memory))
            (pids / "pids.max").write_text(str(limits.processes))
        except OSError:
            made.remove()
            return None
        return made

    @classmethod
    def _make_v2(cls, name: str, limits: Limits) -> Cgroup | None:
        controllers = (CGROUPS / "cgroup.subtree_control").read_text().split()
        if "memory" not in controllers or "pids" not in controllers:
            return None
        group = CGROUPS / name
        made = cls([group], 2)
        try:
            group.mkdir()
            (group / "memory.max").write_text(str(limits.memory))
            with contextlib.suppress(OSError):
                (group / "memory.swap.max").write_text("0")
            (group / "memory.oom.group").write_text("1")
            (group / "pids.max").write_text(str(limits.processes))
        except OSError:
            made.remove()
            return None
        return made

    def exceeded(self) -> list[str]:
        """The limits the command's processes ran into."""
        hit = []
        if self.version == 1:
            memory, pids = self.dirs[:2]
            if _counter(memory / "memory.oom_control", "oom_kill") > 0:
                hit.append("memory")
            if _counter(pids / "pids.events", "max") > 0:
                hit.append("processes")
        else:
            (group,) = self.dirs
            if _counter(group / "memory.events", "oom_kill") > 0:
                hit.append("memory")
            if _counter(group / "pids.events", "max") > 0:
                hit.append("processes")
        return hit

    def cpu_seconds(self) -> float:
        """CPU time every process of the command used (0 where not counted)."""
        try:
            if self.version == 1 and len(self.dirs) > 2:
                return int((self.dirs[2] / "cpuacct.usage").read_text()) / 1e9
            if self.version == 2:
                return _counter(self.dirs[0] / "cpu.stat", "usage_usec") / 1e6
        except (OSError, ValueError):
            pass
        return 0.0

    def remove(self) -> None:
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()


def sweep_cgroups() -> None:
    """Remove the empty cgroups of commands whose goex was killed (best effort)."""
    if os.geteuid() != 0:
        return
    for parent in (CGROUPS, CGROUPS / "memory", CGROUPS / "pids"):
        with contextlib.suppress(OSError):
            for item in parent.iterdir():
                if item.name.startswith(PREFIX) and item.is_dir():
                    with contextlib.suppress(OSError):
                        item.rmdir()  # refused while processes are in it


def exceeded(execution: Execution, limits: Limits, cgroup: Cgroup | None) -> list[str]:
    """Which limits a finished command went past, as people read them."""
    found = [] if cgroup is None else cgroup.exceeded()
    cpu = max(execution.cpu_seconds, cgroup.cpu_seconds() if cgroup else 0.0)
    killed = execution.exit_code in (128 + 9, 128 + 24)  # SIGKILL, SIGXCPU: RLIMIT_CPU
    if cpu >= limits.cpu_time or (killed and execution.seconds >= limits.cpu_time):
        found.append("cpu_time")
    words = {
        "memory": f"memory ({limits.memory // (1024 * 1024)} MiB)",
        "processes": f"processes ({limits.processes})",
        "cpu_time": f"CPU time ({limits.cpu_time:g} s)",
    }
    return [words[name] for name in found]


def _counter(path: Path, key: str) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0
