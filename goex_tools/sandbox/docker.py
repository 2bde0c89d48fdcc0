"""Docker: the command runs in a container of an image, over the workspace's overlay.

Any engine speaking the Docker API on this host will do (Docker, or podman's service, as
`scripts/start-container-engine.sh` starts it): DOCKER_HOST names it, else the default
socket. The engine cannot see a mount made in goex's private namespace, so the overlay is
mounted on the host (root only) over idmapped layers, as for bwrap (`sandbox.idmap`), and its
merged directory is bind-mounted into the container at the workspace's own path: what the
command writes lands in the upper layer, which goex reads as for every backend.

What the command sees and may do, as with bwrap: the image's files, read-only; its own empty
/tmp, /run and /var/tmp, no /sys; the workspace, the only writable place; the directories of
`Limits.show`, read-only (goex's own files below them covered). It runs as `nobody` with no
capabilities and no new privileges, without network unless allowed, in its own PID, IPC and
UTS namespaces, under the memory, process (cgroup), CPU-time and file-size (rlimit) limits.
Nothing of the host is in the container beyond that: no host socket, journal, store or
secrets file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import threading
from pathlib import Path
from typing import Any

from goex_tools.sandbox import view
from goex_tools.sandbox.base import Execution, Layers, Limits, SandboxUnavailable
from goex_tools.sandbox.container import create, engine, remove, run, sweep
from goex_tools.sandbox.idmap import SANDBOX_UID, idmap_problem, idmapped_layers
from goex_tools.sandbox.overlay import detach, mount_options, unprivileged
from goex_tools.sandbox.process import clean_env
from goex_tools.sandbox.resources import wrap

DEFAULT_IMAGE = "goex-sandbox:bookworm"  # Debian 12 minbase, built offline by the script
BUILD_HINT = (
    "build the default image offline with `bash scripts/start-container-engine.sh image` "
    "(Debian bookworm from your apt mirror), or name another: "
    'Workspace(..., sandbox="docker", image="...")'
)
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNMOUNTED = 125  # the exit code of the check that finds the overlay missing in the container
# Runs first in the container: a file that only the directory beneath the overlay holds
# means the engine does not see goex's mount (it lives in another mount namespace).
_CHECK_MOUNTED = '[ -e "$1" ] && { echo "goex: $1" >&2; exit 125; }; shift; exec "$@"'


class DockerSandbox:
    """Runs a command in a container of `image` on a Docker API engine (Docker, podman), over
    the same overlay of the workspace as the other backends."""

    name = "docker"

    def __init__(self, image: str | None = None) -> None:
        self.image = image or DEFAULT_IMAGE
        self._path: str | None = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        try:
            import docker  # noqa: F401
        except ImportError:
            return "the docker backend needs the `docker` package (pip install goex-tools[docker])"
        try:
            api = engine()
            api.ping()
        except Exception as exc:
            where = os.environ.get("DOCKER_HOST") or "the default socket"
            return f"no Docker engine answers at {where} ({type(exc).__name__}: {exc})"
        if unprivileged():
            return "the docker backend mounts the workspace overlay on the host, which needs root"
        try:
            api.inspect_image(self.image)
        except Exception:
            return f"the image {self.image} is not in the engine: {BUILD_HINT}"
        return idmap_problem()

    def notes(self, limits: Limits) -> list[str]:
        leftovers = "processes it left running were killed when it ended"
        seen = (
            f"ran as nobody in a container of {self.image} (no capabilities, no new "
            f"privileges), saw only the image read-only and the workspace"
        )
        if limits.network:
            return [
                f"sandbox docker with network allowed ({seen}): effects outside the workspace "
                f"(network calls) cannot be undone; {leftovers}"
            ]
        return [f"sandbox docker: no network; {seen}; only the workspace was writable; {leftovers}"]

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        if unprivileged():
            raise SandboxUnavailable(
                "the docker backend mounts the workspace overlay on the host, which needs root"
            )
        try:
            api = engine()
            sweep(api)
            env = clean_env("/tmp") | {"PATH": self._search_path(api)}
        except SandboxUnavailable:
            raise
        except Exception as exc:
            raise SandboxUnavailable(f"the Docker engine did not answer: {exc}") from None
        marker = layers.merged / f".goex-unmounted-{secrets.token_hex(8)}"
        _mount(layers, marker)
        try:
            execution = self._run(api, command, layers, limits, env, marker)
        finally:
            detach(layers.merged)
            marker.unlink(missing_ok=True)
        seen = layers.lower / marker.name  # where the container would see it
        if execution.exit_code == UNMOUNTED and f"goex: {seen}" in execution.stderr:
            raise SandboxUnavailable(
                "the Docker engine does not see goex's overlay mount (it runs in another mount "
                "namespace or on another machine), so the command did not run; the docker "
                "backend needs an engine on this host that sees its mounts"
            )
        return execution

    def _run(
        self,
        api: Any,
        command: str,
        layers: Layers,
        limits: Limits,
        env: dict[str, str],
        marker: Path,
    ) -> Execution:
        workspace = str(layers.lower)
        shown, covered = _shown(layers, limits)
        binds = [(str(layers.merged), workspace, True)]
        binds += [(str(path), str(path), False) for path in shown]
        argv = ["sh", "-c", _CHECK_MOUNTED, "goex-mounted", str(layers.lower / marker.name)]
        argv += wrap(command, limits, data=False, processes=False)
        try:
            container = create(api, self.image, limits, binds, covered)
        except Exception as exc:
            raise SandboxUnavailable(f"the container could not be created: {exc}") from None
        try:
            user = f"{SANDBOX_UID}:{SANDBOX_UID}"
            return run(api, container, argv, limits, user=user, workdir=workspace, env=env)
        except SandboxUnavailable:
            raise
        except Exception as exc:
            raise SandboxUnavailable(f"the command could not run in its container: {exc}") from None
        finally:
            remove(api, container)

    def _search_path(self, api: Any) -> str:
        """The PATH the image sets (its toolchain's), else the standard one."""
        with self._lock:
            if self._path is None:
                try:
                    config = api.inspect_image(self.image).get("Config") or {}
                except Exception:
                    raise SandboxUnavailable(
                        f"the image {self.image} is not in the engine: {BUILD_HINT}"
                    ) from None
                found = [e[5:] for e in config.get("Env") or [] if e.startswith("PATH=")]
                self._path = found[0] if found else STANDARD_PATH
            return self._path


def _shown(layers: Layers, limits: Limits) -> tuple[list[Path], list[str]]:
    """The host directories to bind read-only (`Limits.show`, less the system directories,
    which the image provides), and those of goex's own directories they would reveal, to
    cover with an empty tmpfs (a shown directory inside one of those is not shown at all)."""
    shown = view.shown_paths("", layers.lower, limits.show)
    hidden = view.hidden_under(shown, layers.hidden, system=False)
    shown = [p for p in shown if not any(p == h or h in p.parents for h in hidden)]
    return shown, [str(h) for h in hidden]


def _mount(layers: Layers, marker: Path) -> None:
    """Mount the overlay at `layers.merged` on the host, over idmapped layers, with
    `marker` beneath it (hidden by the mount, seen where the mount is not)."""
    marker.touch()
    kept: list[int] = []
    try:
        fds = idmapped_layers(layers, kept)
        options = mount_options(layers, fds)
        mount = ["mount", "-t", "overlay", "goex-overlay", "-o", options, str(layers.merged)]
        done = subprocess.run(mount, capture_output=True, text=True, pass_fds=kept)
    finally:
        for fd in kept:
            with contextlib.suppress(OSError):
                os.close(fd)
    if done.returncode != 0:
        marker.unlink(missing_ok=True)
        raise SandboxUnavailable(
            f"the overlay over {layers.lower} (layers in {layers.upper.parent}) could not be "
            f"mounted, so the command did not run: {done.stderr.strip()[-500:]}"
        )
