"""bubblewrap: the default sandbox on Linux.

The command sees the system read-only, a private /tmp, the workspace (through the overlay)
as the only writable place, no network unless allowed, its own PID namespace (nothing it
starts outlives it) and no capabilities.
"""

from __future__ import annotations

import shutil
import subprocess

from goex_tools.sandbox.base import Execution, Layers, Limits, SandboxUnavailable
from goex_tools.sandbox.overlay import namespaced, overlay_problem
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
        if limits.network:
            return [
                "sandbox bwrap with network allowed: effects outside the workspace (network "
                "calls) cannot be undone"
            ]
        return ["sandbox bwrap: no network; only the workspace was writable"]

    def argv(self, command: str, layers: Layers, limits: Limits) -> list[str]:
        workspace = str(layers.lower)
        argv = [self.executable, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        argv += ["--tmpfs", "/tmp", "--bind", str(layers.merged), workspace]
        argv += ["--chdir", workspace, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not limits.network:
            argv.append("--unshare-net")
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        return [*argv, "sh", "-c", command]

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        if shutil.which(self.executable) is None:
            raise SandboxUnavailable(f"{self.executable} is not installed")
        argv = namespaced(layers, self.argv(command, layers, limits))
        return run_capped(argv, limits, env=clean_env("/tmp"))
