"""What a sandboxed command can actually reach, found by running one (for `goex doctor`).

Three findings, each from a real command in the sandbox over a throw-away workspace:
- sockets: no Unix socket is visible anywhere (a full scan of what the command sees), not
  even one this process listens on beside the workspace, nor the well-known host ones;
- user: the command's uid is not 0, and a root-only file is unreadable;
- limits: the rlimits the command runs under, and whether a cgroup caps it as a whole (one
  goex made, or a container's whose limits its engine shows inside).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Literal

from goex_tools.sandbox.base import Limits

Status = Literal["ok", "warn", "fail"]
Finding = tuple[str, Status, str]

WELL_KNOWN_SOCKETS = (
    "/var/run/postgresql",
    "/run/postgresql",
    "/run/mysqld/mysqld.sock",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/dbus/system_bus_socket",
    "/tmp/.X11-unix",
    "/run/user",
)
ROOT_ONLY = "/etc/shadow"
# A container's own cgroup, as its engine shows it inside (v1, then v2): memory, processes.
CGROUP_LIMITS = (
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/pids/pids.max",
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/pids.max",
)
_SCAN = "find / -path /proc -prune -o -type s -print 2>/dev/null"


def probe(backend: str) -> list[Finding]:
    """Run the probe command in `backend` and judge what it saw."""
    from goex_tools.sandbox import get_sandbox
    from goex_tools.sandbox.overlay import make_layers, remove_layers

    limits = Limits(timeout=60)
    with tempfile.TemporaryDirectory(prefix="goex-doctor-") as tmp:
        lower = Path(tmp) / "ws"
        lower.mkdir()
        planted = Path(tmp) / "planted.sock"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(planted))
            server.listen()
            names = " ".join([str(planted), *WELL_KNOWN_SOCKETS])
            command = (
                f"for p in {names}; do [ -e $p ] && echo visible:$p; done; {_SCAN}; "
                f"echo uid:$(id -u); cat {ROOT_ONLY} >/dev/null 2>&1 && echo read:{ROOT_ONLY}; "
                "echo limits:$(ulimit -t) $(ulimit -f) $(ulimit -d) $(ulimit -p); "
                "grep -q goex- /proc/self/cgroup && echo cgroup:yes; "
                f"for f in {' '.join(CGROUP_LIMITS)}; do [ -r $f ] && echo cg:$(cat $f); done; true"
            )
            layers = make_layers(lower, Path(tmp) / "scratch")
            try:
                done = get_sandbox(backend).run(command, layers, limits)
            finally:
                remove_layers(layers)
    return judge(done.stdout.splitlines(), backend, limits)


def judge(lines: list[str], backend: str, limits: Limits) -> list[Finding]:
    """Findings from the probe's output lines."""
    visible = [line.removeprefix("visible:") for line in lines if line.startswith("visible:")]
    sockets = [line for line in lines if line.startswith("/")]
    seen = sorted(set(visible + sockets))
    findings: list[Finding] = []
    if seen:
        detail = f"{backend}: a command sees host sockets: {', '.join(seen[:10])}"
        findings.append(("sockets hidden", "fail", detail))
    else:
        detail = f"{backend}: no Unix socket visible (scanned all it sees, incl. a live one)"
        findings.append(("sockets hidden", "ok", detail))
    uid = next((line.removeprefix("uid:") for line in lines if line.startswith("uid:")), "?")
    read = any(line.startswith("read:") for line in lines)
    if uid in ("0", "?") or read:
        detail = f"{backend}: commands run as uid {uid}" + (
            f", {ROOT_ONLY} readable" if read else ""
        )
        findings.append(("user unprivileged", "fail", detail))
    else:
        unreadable = f"; {ROOT_ONLY} unreadable" if os.path.exists(ROOT_ONLY) else ""
        findings.append(
            ("user unprivileged", "ok", f"{backend}: commands run as uid {uid}{unreadable}")
        )
    raw = next((line.removeprefix("limits:") for line in lines if line.startswith("limits:")), "")
    capped = [line.removeprefix("cg:") for line in lines if line.startswith("cg:")]
    numbers = [int(v) for v in capped if v.isdigit()]
    cgroup = "cgroup:yes" in lines or (
        len(numbers) == 2 and numbers[0] <= limits.memory and numbers[1] <= limits.processes + 1
    )
    values = raw.split()
    if len(values) != 4 or values[0] == "unlimited" or values[1] == "unlimited":
        findings.append(("limits in force", "fail", f"{backend}: rlimits not set ({raw!r})"))
    else:
        cpu, blocks, data, procs = values
        whole = (
            "memory and processes capped for the whole command by a cgroup"
            if cgroup
            else f"memory per process {data} KiB, processes {procs} (no cgroup here)"
        )
        detail = f"{backend}: CPU {cpu} s, file size {int(blocks) * 512} bytes; {whole}"
        findings.append(("limits in force", "ok" if cgroup else "warn", detail))
    return findings
