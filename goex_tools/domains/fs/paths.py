"""Workspace-relative paths: normalised, and refused when they would leave the workspace."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from goex_tools.domains.fs import beneath
from goex_tools.domains.fs.errors import FsError


def relative(root: Path, path: str) -> str:
    """`path` (relative to `root`, or absolute inside it) as a normalised POSIX relative path.

    Refuses paths that leave the workspace, name the workspace itself, or pass through a
    symlink (which could point anywhere).
    """
    if not path or "\x00" in path:
        raise FsError(f"invalid path {path!r}")
    candidate = PurePosixPath(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.relative_to(PurePosixPath(root))
        except ValueError:
            raise FsError(f"{path} is outside the workspace {root}") from None
    normal = os.path.normpath(str(candidate))
    if normal == "." or normal == ".." or normal.startswith("../"):
        raise FsError(f"{path} does not name a path inside the workspace {root}")
    for parent in reversed(PurePosixPath(normal).parents[:-1]):  # outermost first
        st = beneath.lstat(root, parent.as_posix())
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise FsError(
                f"{path} goes through the symlink {parent}; name the path without symlinks"
            )
    return normal


def subtree(root: Path, rel: str) -> list[str]:
    """`rel` and, if it is a real directory, every path below it (symlinks not followed)."""
    return beneath.subtree(root, rel)


def missing_parents(root: Path, rel: str) -> list[str]:
    """The parent directories of `rel` that do not exist yet, outermost first."""
    parents = list(PurePosixPath(rel).parents)[:-1]  # drop "."
    return [p.as_posix() for p in reversed(parents) if beneath.lstat(root, p.as_posix()) is None]
