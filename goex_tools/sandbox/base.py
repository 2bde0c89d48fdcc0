"""What every sandbox backend shares: the limits a command runs under and what it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from goex_tools.errors import GoexError


class SandboxUnavailable(GoexError):
    """The chosen sandbox backend cannot run on this machine (the message says why)."""


class Limits(BaseModel):
    """How long a command may run, how much output is kept, and whether it may use the network."""

    timeout: float = Field(
        default=60.0, gt=0
    )  # seconds; the whole process group is killed after it
    output_limit: int = Field(default=64 * 1024, gt=0)  # bytes kept of stdout and of stderr, each
    network: bool = False


class Execution(BaseModel):
    """What a command did, as far as its process is concerned."""

    exit_code: int | None  # None when it was killed for running past the time limit
    stdout: str
    stderr: str
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seconds: float = 0.0


class Layers(BaseModel):
    """The directories of an overlay over a workspace: the command's writes land in `upper`."""

    lower: Path  # the real workspace, never written by the command
    upper: Path
    work: Path
    merged: Path
    hidden: list[Path] = []  # directories the command must not see (e.g. goex's blob store)


class Sandbox(Protocol):
    """Runs a shell command over the merged view of an overlay, never on the real workspace."""

    name: str

    def problem(self) -> str | None:
        """None if the backend works on this machine, else the reason it does not."""

    def notes(self, limits: Limits) -> list[str]:
        """What a person should know about a step run in this sandbox (recorded on the step)."""

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        """Run `command` with the workspace (at its own path) seen through `layers`."""
