"""What every sandbox backend shares: the limits a command runs under and what it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field, field_validator

from goex_tools.errors import GoexError


class SandboxUnavailable(GoexError):
    """The chosen sandbox backend cannot run on this machine (the message says why)."""


class LimitExceeded(GoexError):
    """A command went past a resource limit: it was stopped, and nothing it did was applied."""


MiB = 1024 * 1024


class Limits(BaseModel):
    """What a command may use: time, output, network, resources, and host paths it may see.

    - `timeout`: seconds of wall-clock time; the whole command is killed after it.
    - `output_limit`: bytes kept of stdout and of stderr, each.
    - `network`: whether it may use the network (and the host's abstract sockets).
    - `memory`: bytes of memory for the whole command where a cgroup can be made (root), a
      process past it is killed; elsewhere each process's data segment (allocations fail).
    - `processes`: processes (and threads) the command may have at once.
    - `file_size`: bytes; a process writing a larger file is killed (SIGXFSZ).
    - `cpu_time`: CPU seconds; a process past it is killed, and so is a command whose
      processes together used more.
    - `show`: host directories shown read-only, beside the system view (see sandbox.view).

    A command past `memory`, `processes`, `file_size` or `cpu_time` fails its step and
    nothing it did is applied (`LimitExceeded`).
    """

    timeout: float = Field(default=60.0, gt=0)
    output_limit: int = Field(default=64 * 1024, gt=0)
    network: bool = False
    memory: int = Field(default=512 * MiB, ge=16 * MiB)
    processes: int = Field(default=256, ge=4)
    file_size: int = Field(default=1024 * MiB, ge=512)
    cpu_time: float = Field(default=60.0, gt=0)
    show: list[str] = Field(default_factory=list)

    @field_validator("show")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/") or any(c in path for c in "\x00\n"):
                raise ValueError(f"{path!r} is not an absolute path")
        return paths


class Execution(BaseModel):
    """What a command did, as far as its process is concerned."""

    exit_code: int | None  # None when it was killed for running past the time limit
    stdout: str
    stderr: str
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system time of the command's processes that ended
    exceeded: list[str] = []  # the limits it went past (see Limits), as people read them


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
