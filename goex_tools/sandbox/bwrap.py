"""bubblewrap: the default sandbox on Linux.

The command sees the system read-only, minus the hidden directories (goex's blob store of
before-images); a private /tmp, with the directories on its PATH that live under /tmp (a
virtualenv, say) shown read-only; the workspace (through the overlay) as the only writable
place; no network unless allowed; its own PID namespace (nothing it starts outlives it);
no capabilities.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from goex_tools.sandbox.base import Execution, Layers, Limits, SandboxUnavailable
from goex_tools.sandbox.overlay import (
    namespaced,
    overlay_problem,
    require_mounted,
    unprivileged,
)
from goex_tools.sandbox.process import clean_env, run_capped


class BwrapSandbox:
    name = "bwrap"

    def __init__(self, executable: str = "bwrap") -> None:
        self.executable = executable

    def problem(self) -> str | None:
        if shutil.which(self.executable) is None:
            return f"{self.executable} is not installed (Debian/Ubuntu package `bubblewrap`)"
        check = [self.executable, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid"]
        done = subprocess.run([*check, "true"], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            return f"bwrap cannot create namespaces here: {done.stderr.strip()}"
        return overlay_problem()

    def notes(self, limits: Limits) -> list[str]:
        leftovers = "processes it left running were killed when it ended"
        if limits.network:
            return [
                "sandbox bwrap with network allowed: effects outside the workspace (network "
                f"calls) cannot be undone; {leftovers}"
            ]
        return [f"sandbox bwrap: no network; only the workspace was writable; {leftovers}"]

    def argv(
        self,
        command: str,
        layers: Layers,
        limits: Limits,
        search_path: str = "",
        status_fd: int | None = None,
    ) -> list[str]:
        workspace = str(layers.lower)
        argv = [self.executable, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        if status_fd is not None:  # bwrap reports the command's exit code there, if it ran
            argv += ["--json-status-fd", str(status_fd)]
        argv += ["--tmpfs", "/tmp"]
        for tools in tools_under_tmp(search_path, layers.lower):
            argv += ["--ro-bind", str(tools), str(tools)]
        for hidden in layers.hidden:  # an empty tmpfs over it; bind sources still resolve
            argv += ["--tmpfs", str(hidden)]
        argv += ["--bind", str(layers.merged), workspace]
        argv += ["--chdir", workspace, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not limits.network:
            argv.append("--unshare-net")
        if unprivileged():  # run as the caller, not as the namespace's root (see overlay.py)
            argv += ["--unshare-user", "--uid", str(os.geteuid()), "--gid", str(os.getegid())]
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        return [*argv, "sh", "-c", command]

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        if shutil.which(self.executable) is None:
            raise SandboxUnavailable(f"{self.executable} is not installed")
        env = clean_env("/tmp")
        status, status_w = os.pipe()
        try:
            argv = self.argv(command, layers, limits, env["PATH"], status_w)
            # bwrap has its own PID namespace; the mount reports on bwrap's status pipe
            chain = namespaced(layers, argv, own_pids=False, report_to=status_w)
            run = run_capped(chain, limits, env=env, pass_fds=(status_w,))
        finally:
            os.close(status_w)
        try:
            reported = _available(status)
        finally:
            os.close(status)
        execution = require_mounted(layers, run, reported)
        if b'"exit-code"' not in reported and not execution.timed_out:
            raise SandboxUnavailable(
                f"bwrap could not set up the sandbox, so the command did not run: "
                f"{execution.stderr.strip()[-500:]}"
            )
        return execution


def _available(fd: int) -> bytes:
    """What has been written to the pipe `fd` so far (a leftover process may still hold it)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


def tools_under_tmp(search_path: str, workspace: Path) -> list[Path]:
    """The directories on the command's PATH that the private /tmp would hide, to show them
    read-only: a virtualenv as a whole (its interpreter needs more than `bin/`), others as
    they are. Those inside the workspace are there already."""
    found: list[Path] = []
    for entry in search_path.split(os.pathsep):
        normal = os.path.normpath(entry) if entry else ""
        if not normal.startswith("/tmp/") or not os.path.isdir(normal):  # cheap test first
            continue
        path = Path(normal)
        if (path.parent / "pyvenv.cfg").is_file():
            path = path.parent
        if path == workspace or workspace in path.parents:
            continue
        if path not in found:
            found.append(path)
    return found
