"""Sandboxes for shell commands: `bwrap` (default on Linux), `docker` (a container per
command on a Docker API engine), `none` (trusted use).

Every backend runs the command over an overlay of the workspace, so the command never
writes the workspace itself; goex-tools reads the overlay's upper layer to learn what changed.
"""

from __future__ import annotations

from goex_tools.errors import InvalidArgument as _InvalidArgument
from goex_tools.sandbox.base import (
    Execution,
    Layers,
    LimitExceeded,
    Limits,
    Sandbox,
    SandboxUnavailable,
)
from goex_tools.sandbox.bwrap import BwrapSandbox
from goex_tools.sandbox.docker import DEFAULT_IMAGE, DockerSandbox
from goex_tools.sandbox.none import NoSandbox

DEFAULT = "bwrap"
BACKENDS = ("bwrap", "docker", "none")


def get_sandbox(name: str = DEFAULT, *, image: str | None = None) -> Sandbox:
    """The backend called `name`: "bwrap", "docker" or "none"; `image`: the docker
    backend's image (default `DEFAULT_IMAGE`), which only it takes."""
    if image is not None and name != "docker":
        raise _InvalidArgument(f"an image is for the docker sandbox, not {name!r}")
    if name == "bwrap":
        return BwrapSandbox()
    if name == "docker":
        return DockerSandbox(image)
    if name == "none":
        return NoSandbox()
    raise _InvalidArgument(f"unknown sandbox {name!r}; choose one of {', '.join(BACKENDS)}")


def available_backends() -> dict[str, str | None]:
    """Each backend's name -> None if it works on this machine, else the reason it does not."""
    return {name: get_sandbox(name).problem() for name in BACKENDS}


__all__ = [
    "BACKENDS",
    "DEFAULT",
    "DEFAULT_IMAGE",
    "BwrapSandbox",
    "DockerSandbox",
    "Execution",
    "Layers",
    "LimitExceeded",
    "Limits",
    "NoSandbox",
    "Sandbox",
    "SandboxUnavailable",
    "available_backends",
    "get_sandbox",
]
