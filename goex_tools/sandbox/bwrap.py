"""bubblewrap: the default sandbox on Linux.

The command sees an explicit read-only view of the system (`sandbox.view`: /usr, /bin, /lib*,
/etc, its PATH's tools), never `/`: no host socket, no home directory, no journal, store or
secrets file. Its /tmp, /run and /var/tmp are private and empty; the workspace (through the
overlay) is the only writable place. It has no network unless allowed, its own PID namespace
(nothing it starts outlives it), no capabilities, and resource limits (`sandbox.resources`).

It never runs as root: when goex runs as root, the command runs as `nobody` over idmapped
overlay layers that give it root's workspace files (`sandbox.idmap`); an ordinary user's
command runs as that user, as always.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from goex_tools.sandbox import view
from goex_tools.sandbox.base import Execution, Layers, Limits, SandboxUnavailable
from goex_tools.sandbox.idmap import SANDBOX_UID, idmap_problem, idmapped_layers
from goex_tools.sandbox.overlay import (
    namespaced,
    overlay_problem,
    require_mounted,
    unprivileged,
)
from goex_tools.sandbox.process import clean_env, run_capped
from goex_tools.sandbox.resources import Cgroup, exceeded, wrap


class BwrapSandbox:
    """Runs a command under bubblewrap (Linux namespaces): no network unless asked, an explicit
    view of the system, goex's files hidden, the workspace seen through an overlay."""

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
        return overlay_problem() or idmap_problem()

    def notes(self, limits: Limits) -> list[str]:
        leftovers = "processes it left running were killed when it ended"
        who = "as nobody" if not unprivileged() else "as the calling user"
        seen = f"ran {who}, saw only the system read-only and the workspace"
        if limits.network:
            return [
                f"sandbox bwrap with network allowed ({seen}): effects outside the workspace "
                f"(network calls) cannot be undone; {leftovers}"
            ]
        return [f"sandbox bwrap: no network; {seen}; only the workspace was writable; {leftovers}"]

    def argv(
        self,
        command: str,
        layers: Layers,
        limits: Limits,
        search_path: str = "",
        status_fd: int | None = None,
        *,
        cgroup: bool = False,
    ) -> list[str]:
        """bwrap's arguments; `cgroup`: memory and processes are capped by a cgroup."""
        workspace = str(layers.lower)
        argv = [self.executable, *view.system_binds(), *view.fresh_dirs()]
        argv += view.resolver(limits.network)
        if status_fd is not None:  # bwrap reports the command's exit code there, if it ran
            argv += ["--json-status-fd", str(status_fd)]
        shown = view.shown_paths(search_path, layers.lower, limits.show)
        for path in shown:
            argv += [*view.parents(path), "--ro-bind-try", str(path), str(path)]
        for hidden in view.hidden_under(shown, layers.hidden):  # goex's own files: empty
            argv += ["--tmpfs", str(hidden)]
        argv += [*view.parents(layers.lower), "--bind", str(layers.merged), workspace]
        argv += ["--chdir", workspace, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not limits.network:
            argv.append("--unshare-net")
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        limited = wrap(command, limits, data=not cgroup, processes=not cgroup)
        if unprivileged():  # run as the caller, not as the namespace's root (see overlay.py)
            argv += ["--unshare-user", "--uid", str(os.geteuid()), "--gid", str(os.getegid())]
            return [*argv, *limited]
        # root: the first program inside drops to the sandbox user for good (a user
        # namespace made by root would map the command back to root), with the only
        # capabilities it needs for that, then none
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        return [*argv, *drop_to(SANDBOX_UID), *limited]

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        if shutil.which(self.executable) is None:
            raise SandboxUnavailable(f"{self.executable} is not installed")
        env = clean_env("/tmp")
        fds: list[int] = []  # descriptors passed on
        cgroup = None
        status, status_w = os.pipe()
        fds.append(status_w)
        try:
            layer_fds = idmapped_layers(layers, fds)
            cgroup = Cgroup.make(limits)
            argv = self.argv(
                command, layers, limits, env["PATH"], status_w, cgroup=cgroup is not None
            )
            # bwrap has its own PID namespace; the mount reports on bwrap's status pipe
            chain = namespaced(
                layers,
                argv,
                own_pids=False,
                report_to=status_w,
                layer_fds=layer_fds,
                join=cgroup.procs if cgroup else None,
            )
            run = run_capped(chain, limits, env=env, pass_fds=tuple(fds))
            over = exceeded(run, limits, cgroup)
        except BaseException:
            os.close(status)
            raise
        finally:
            for fd in fds:
                os.close(fd)
            if cgroup is not None:
                cgroup.release()
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
        return execution.model_copy(update={"exceeded": over})


def drop_to(uid: int) -> list[str]:
    """argv prefix that becomes `uid` (and its group) for good: no groups, no capabilities
    (bounding set included), no new privileges (a set-uid program gains nothing)."""
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


def _available(fd: int) -> bytes:
    """What has been written to the pipe `fd` so far (a leftover process may still hold it)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""
