"""An overlay over the workspace, mounted in a private mount namespace.

The command's writes land in the overlay's upper directory, never in the workspace, so what
a command changed is read from the upper directory in time proportional to the change.
As root the namespace is made with `unshare -m`; an ordinary user gets a user namespace too
(`unshare -Urm`) and the overlay needs `userxattr`. The mount vanishes with the namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from goex_tools.sandbox.base import Layers, SandboxUnavailable

# Rejected in overlay mount options, which are comma-separated and use ':' between lowerdirs.
_UNSAFE = (",", ":", "\\", "\n")

_MOUNT_THEN_EXEC = 'mount -t overlay goex-overlay -o "$1" "$2" && shift 2 && exec "$@"'


def make_layers(lower: Path, scratch: Path) -> Layers:
    """Create empty upper/work/merged directories under `scratch` for an overlay on `lower`."""
    for path in (lower, scratch):
        if any(c in str(path) for c in _UNSAFE):
            raise SandboxUnavailable(
                f"{path} contains one of {' '.join(_UNSAFE[:3])}, which overlay mount options "
                f"cannot express; use a workspace and store path without them"
            )
    layers = Layers(
        lower=lower, upper=scratch / "upper", work=scratch / "work", merged=scratch / "merged"
    )
    for path in (layers.upper, layers.work, layers.merged):
        path.mkdir(parents=True)
    return layers


def remove_layers(layers: Layers) -> None:
    """Delete the scratch directories (overlayfs leaves its work dir with mode 000)."""
    for path in (layers.work, layers.work / "work"):
        if path.exists():
            os.chmod(path, 0o700)
    shutil.rmtree(layers.upper.parent, ignore_errors=True)


def unprivileged() -> bool:
    return os.geteuid() != 0


def opaque_xattrs() -> tuple[str, ...]:
    """The xattr names overlayfs uses to mark a directory whose lower contents are hidden."""
    return ("trusted.overlay.opaque", "user.overlay.opaque")


def mount_options(layers: Layers) -> str:
    """Overlay options; metacopy and redirects stay off so the upper layer holds whole files."""
    options = (
        f"lowerdir={layers.lower},upperdir={layers.upper},workdir={layers.work},"
        "redirect_dir=off,metacopy=off"
    )
    return options + ",userxattr" if unprivileged() else options


def namespaced(layers: Layers, argv: list[str]) -> list[str]:
    """argv that mounts the overlay in a fresh mount namespace, then execs `argv` inside it."""
    unshare = ["unshare", "-Urm" if unprivileged() else "-m", "--propagation", "private"]
    options = mount_options(layers)
    mount = ["sh", "-c", _MOUNT_THEN_EXEC, "goex-overlay", options, str(layers.merged)]
    return [*unshare, *mount, *argv]


def overlay_problem() -> str | None:
    """None if an overlay can be mounted in a private namespace here, else the reason."""
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    with tempfile.TemporaryDirectory(prefix="goex-overlay-check-") as tmp:
        lower = Path(tmp) / "lower"
        lower.mkdir()
        layers = make_layers(lower, Path(tmp) / "scratch")
        argv = namespaced(layers, ["touch", str(layers.merged / "probe")])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        ok = done.returncode == 0 and (layers.upper / "probe").exists()
        remove_layers(layers)
    if ok:
        return None
    return f"cannot mount an overlay in a private mount namespace: {done.stderr.strip()}"
