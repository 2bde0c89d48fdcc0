"""The filesystem domain: reversible file tools and sandboxed shell commands over a workspace.

Tools (contract names): `write_file`, `edit_file`, `delete_path`, `move_path`, `make_dir`,
`run_shell`, all methods of `Workspace`. Each is journaled with one compensation kind,
`fs.restore`, which brings back the before-images of exactly the paths the step touched.
`keep`/`discard` decide on tentative commands; `diff` shows what a step changed.
"""

from __future__ import annotations

from goex_tools.domains.fs import compensation as _compensation  # registers fs.restore
from goex_tools.domains.fs.changes import PathChange, RestoreArgs
from goex_tools.domains.fs.diff import FileDiff, StepDiff, diff
from goex_tools.domains.fs.entries import Entry, manifest
from goex_tools.domains.fs.errors import (
    CommandTimedOut,
    FsError,
    UnsupportedFile,
    WorkspaceChanged,
)
from goex_tools.domains.fs.held import discard, held_steps, keep
from goex_tools.domains.fs.results import Changed, FileResult, ShellResult
from goex_tools.domains.fs.workspace import Workspace

KIND = _compensation.KIND

__all__ = [
    "KIND",
    "Changed",
    "CommandTimedOut",
    "Entry",
    "FileDiff",
    "FileResult",
    "FsError",
    "PathChange",
    "RestoreArgs",
    "ShellResult",
    "StepDiff",
    "UnsupportedFile",
    "Workspace",
    "WorkspaceChanged",
    "diff",
    "discard",
    "held_steps",
    "keep",
    "manifest",
]
