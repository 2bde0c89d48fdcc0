"""Workspace-relative paths: normalised, and refused when they would leave the workspace."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

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
    current = root
    for part in PurePosixPath(normal).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise FsError(
                f"{path} goes through the symlink {current.relative_to(root)}; "
                f"name the path without symlinks"
            )
    return normal


def subtree(root: Path, rel: str) -> list[str]:
    """`rel` and, if it is a real directory, every path below it (symlinks not followed)."""
    found = [rel]
    top = root / rel
    if not top.is_dir() or top.is_symlink():
        return found
    for dirpath, dirnames, filenames in os.walk(top):
        base = Path(dirpath).relative_to(root).as_posix()
        found.extend(f"{base}/{name}" for name in (*dirnames, *filenames))
    return found


def missing_parents(root: Path, rel: str) -> list[str]:
    """The parent directories of `rel` that do not exist yet, outermost first."""
    parents = list(PurePosixPath(rel).parents)[:-1]  # drop "."
    return [p.as_posix() for p in reversed(parents) if not os.path.lexists(root / p)]
