"""Errors of the filesystem domain; each says what was wrong and that nothing changed."""

from __future__ import annotations

from goex_tools.errors import GoexError


class FsError(GoexError):
    """Bad input to a filesystem tool (a path outside the workspace, a missing file...)."""


class UnsupportedFile(FsError):
    """A path whose type (device, FIFO, socket) goex cannot capture and restore."""


class WorkspaceChanged(FsError):
    """The workspace changed between planning an action and applying it; nothing was applied."""


class CommandTimedOut(FsError):
    """A shell command ran past its time limit; it was killed and its changes discarded."""
