"""Resource limits of a command: rlimits inside the sandbox, a cgroup where one can be made.

Every process of the command gets hard rlimits, set by the first process inside the
sandbox: CPU seconds, file size, and (without a cgroup) data segment and processes. Where
goex may create cgroups (root, v1 or v2), the command also runs in one of its own whose
memory (swap included) and process count are capped for the command as a whole, and whose
counters tell afterwards whether a limit was hit (an out-of-memory kill, a refused fork).

`exceeded` says which limits a finished command went past; the caller then fails its step.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import threading
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
    """A cgroup (v1 memory + pids + cpuacct hierarchies, or v2) a command runs in; `procs`
    are the files a process writes its pid to, to join. Made once and reused by this
    process's later commands (making and removing one costs more than a command's start):
    its counters are read before and after each command."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version
        self.limits: tuple[int, int] | None = None
        self.start: tuple[int, int, float] = (0, 0, 0.0)

    @classmethod
    def of_process(cls, pid: int, must_name: str = "") -> Cgroup | None:
        """The cgroup process `pid` is in, to read its counters (a container's, made by its
        engine); None if it is not readable here or its path does not name `must_name`."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        paths: dict[str, str] = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path.lstrip("/")
        if "memory" in paths and "pids" in paths:
            dirs = [CGROUPS / "memory" / paths["memory"], CGROUPS / "pids" / paths["pids"]]
            if "cpuacct" in paths:
                dirs.append(CGROUPS / "cpuacct" / paths["cpuacct"])
            found = cls(dirs, 1)
        elif "" in paths and (CGROUPS / "cgroup.controllers").exists():
            found = cls([CGROUPS / paths[""]], 2)
        else:
            return None
        named = all(must_name in str(d) for d in found.dirs)
        return found if named and all(d.is_dir() for d in found.dirs) else None

    @property
    def procs(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    @classmethod
    def make(cls, limits: Limits) -> Cgroup | None:
        """A cgroup set to `limits` for one command (give it back with `release`), or None
        where this process may not make one."""
        if os.geteuid() != 0:
            return None
        with _pool_lock:
            group = _pool.pop() if _pool else None
        if group is None:
            name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            try:
                if (CGROUPS / "cgroup.controllers").exists():
                    group = cls._make_v2(name)
                else:
                    group = cls._make_v1(name)
            except OSError:
                return None
            if group is None:
                return None
        try:
            group._set(limits)
        except OSError:
            group.remove()
            return None
        group.start = group._counters()
        return group

    @classmethod
    def _make_v1(cls, name: str) -> Cgroup | None:
        memory, pids = CGROUPS / "memory" / name, CGROUPS / "pids" / name
        if not (memory.parent / "memory.limit_in_bytes").exists() or not pids.parent.is_dir():
            return None
        cpu = CGROUPS / "cpuacct" / name
        made = cls([memory, pids, cpu] if cpu.parent.is_dir() else [memory, pids], 1)
        try:
            for directory in made.dirs:
                directory.mkdir()
        except OSError:
            made.remove()
            return None
        return made

    @classmethod
    def _make_v2(cls, name: str) -> Cgroup | None:
        controllers = (CGROUPS / "cgroup.subtree_control").read_text().split()
        if "memory" not in controllers or "pids" not in controllers:
            return None
        made = cls([CGROUPS / name], 2)
        try:
            made.dirs[0].mkdir()
            with contextlib.suppress(OSError):
                (made.dirs[0] / "memory.swap.max").write_text("0")
            (made.dirs[0] / "memory.oom.group").write_text("1")
        except OSError:
            made.remove()
            return None
        return made

    def _set(self, limits: Limits) -> None:
        wanted = (limits.memory, limits.processes)
        if wanted == self.limits:
            return
        if self.version == 1:
            memory, pids = self.dirs[:2]
            swap = memory / "memory.memsw.limit_in_bytes"
            files = [memory / "memory.limit_in_bytes"] + ([swap] if swap.exists() else [])
            if self.limits is not None and limits.memory > self.limits[0]:
                files.reverse()  # memory + swap may never be below memory
            for name in files:
                name.write_text(str(limits.memory))
            (pids / "pids.max").write_text(str(limits.processes))
        else:
            (self.dirs[0] / "memory.max").write_text(str(limits.memory))
            (self.dirs[0] / "pids.max").write_text(str(limits.processes))
        self.limits = wanted

    def _counters(self) -> tuple[int, int, float]:
        """(out-of-memory kills, refused forks, CPU seconds) so far."""
        if self.version == 1:
            memory, pids = self.dirs[:2]
            ooms = _counter(memory / "memory.oom_control", "oom_kill")
            forks = _counter(pids / "pids.events", "max")
            cpu = 0.0
            if len(self.dirs) > 2:
                with contextlib.suppress(OSError, ValueError):
                    cpu = int((self.dirs[2] / "cpuacct.usage").read_text()) / 1e9
            return ooms, forks, cpu
        group = self.dirs[0]
        usage = _counter(group / "cpu.stat", "usage_usec") / 1e6
        ooms = _counter(group / "memory.events", "oom_kill")
        return ooms, _counter(group / "pids.events", "max"), usage

    def exceeded(self) -> list[str]:
        """The limits the command's processes ran into since `make`."""
        ooms, forks, _ = self._counters()
        hit = []
        if ooms > self.start[0]:
            hit.append("memory")
        if forks > self.start[1]:
            hit.append("processes")
        return hit

    def cpu_seconds(self) -> float:
        """CPU time the command's processes used since `make` (0 where not counted)."""
        return max(0.0, self._counters()[2] - self.start[2])

    def release(self) -> None:
        """Back to the pool once every process has left it; removed otherwise."""
        try:
            empty = all(not Path(p).read_text().strip() for p in self.procs)
        except OSError:
            empty = False
        if empty:
            with _pool_lock:
                _pool.append(self)
        else:
            self.remove()

    def remove(self) -> None:
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()


_pool: list[Cgroup] = []
_pool_lock = threading.Lock()


def _empty_pool() -> None:
    with _pool_lock:
        while _pool:
            _pool.pop().remove()


atexit.register(_empty_pool)
os.register_at_fork(after_in_child=_pool.clear)  # the parent's, not the child's to reuse


def sweep_cgroups() -> None:
    """Remove the cgroups that goex processes which are gone left behind (best effort)."""
    if os.geteuid() != 0:
        return
    for parent in (CGROUPS, CGROUPS / "memory", CGROUPS / "pids", CGROUPS / "cpuacct"):
        with contextlib.suppress(OSError):
            for item in parent.iterdir():
                if item.name.startswith(PREFIX) and item.is_dir() and not _owner_alive(item.name):
                    with contextlib.suppress(OSError):
                        item.rmdir()  # refused while processes are in it


def _owner_alive(name: str) -> bool:
    pid = name[len(PREFIX) :].split("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
