"""What the filesystem tools return to the caller (and, through a front door, to the model)."""

from __future__ import annotations

from pydantic import BaseModel

from goex_tools.domains.fs.changes import PathChange


class Changed(BaseModel):
    """One path a file tool or command changed, and how (`created`, `modified`, `deleted`, ...)."""

    path: str
    change: str


class FileResult(BaseModel):
    """A file tool's outcome: its step and the paths it changed."""

    step_id: str
    changes: list[Changed]


class ShellResult(BaseModel):
    """A command's outcome. `held`: its changes wait for `keep` or `discard`."""

    step_id: str
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    changes: list[Changed]
    held: bool = False
    notes: list[str] = []


def changed(changes: list[PathChange]) -> list[Changed]:
    return [Changed(path=c.shown, change=c.kind) for c in changes]
