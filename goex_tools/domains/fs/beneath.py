"""Workspace paths opened beneath the workspace root, never through a symlink.

A command may leave a symlink anywhere in its workspace, pointing anywhere on the host, and
goex runs outside the sandbox as the user running the agent. So every path goex reads,
writes or deletes in a workspace is reached one component at a time from the root, each
directory opened with `O_PATH | O_DIRECTORY | O_NOFOLLOW` relative to the one before
(`openat`), and the last name is used only through its parent's descriptor (`dir_fd=`).
Nothing is resolved from a joined string, and each operation walks again when it is used,
so a symlink planted between two operations is met by the second.

A path below a symlink (or below a file) is not in the workspace: reading it finds it
absent, and writing or creating anything there is refused (`NotBeneath`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from goex_tools.domains.fs.errors import FsError

_PATH = getattr(os, "O_PATH", os.O_RDONLY)  # Linux; a plain descriptor elsewhere
DIR_FLAGS = _PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
ROOT = "."  # the workspace directory itself


class NotBeneath(FsError):
    """A workspace path goes through a symlink or a file where a directory should be: goex
    never follows it, so nothing there was read, written or deleted."""


def parts(rel: str) -> list[str]:
    """The components of a workspace-relative path; refuses `..`, `.` and empty ones (a
    journaled path is data, and data may have been tampered with)."""
    if rel == ROOT:
        return []
    found = rel.split("/")
    if any(p in ("", ".", "..") for p in found) or "\x00" in rel:
        raise FsError(f"{rel!r} is not a normalised path inside the workspace")
    return found


def open_root(root: Path) -> int:
    """A descriptor of the workspace root itself (refused if the root became a symlink)."""
    try:
        return os.open(root, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise NotBeneath(f"the workspace root {root} is not a directory (a symlink?)") from None
        raise


def _walk(root: Path, names: list[str]) -> tuple[int, int]:
    """Open `names` one by one below the root; return (descriptor, how many were opened).
    Stops at the first component that is missing or not a real directory."""
    fd = open_root(root)
    for depth, name in enumerate(names):
        try:
            inner = os.open(name, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return fd, depth
            os.close(fd)
            raise
        os.close(fd)
        fd = inner
    return fd, len(names)


@contextmanager
def parent_of(root: Path, rel: str) -> Iterator[tuple[int, str] | None]:
    """(descriptor of `rel`'s parent, last name), or None when `rel` cannot exist in the
    workspace because a component above it is missing, a symlink or a file."""
    names = parts(rel)
    if not names:
        raise FsError("the workspace root has no parent inside the workspace")
    fd, depth = _walk(root, names[:-1])
    try:
        yield (fd, names[-1]) if depth == len(names) - 1 else None
    finally:
        os.close(fd)


@contextmanager
def writable_parent(root: Path, rel: str) -> Iterator[tuple[int, str]]:
    """(descriptor of `rel`'s parent, last name); refuses when a component above `rel` is
    a symlink or a file (`NotBeneath`) or missing."""
    names = parts(rel)
    fd, depth = _walk(root, names[:-1])
    try:
        if depth < len(names) - 1:
            blocker = "/".join(names[: depth + 1])
            raise NotBeneath(
                f"cannot write {rel}: {blocker} is {describe(root, blocker)}, not a directory; "
                f"goex never follows it"
            )
        yield fd, names[-1]
    finally:
        os.close(fd)


@contextmanager
def directory(root: Path, rel: str, flags: int = DIR_FLAGS) -> Iterator[int | None]:
    """A descriptor of the directory `rel` itself (the root for "."), or None if `rel` is not
    a real directory in the workspace."""
    names = parts(rel)
    if flags == DIR_FLAGS:
        fd, depth = _walk(root, names)
        try:
            yield fd if depth == len(names) else None
        finally:
            os.close(fd)
        return
    if not names:
        fd = os.open(root, flags)
    else:
        with parent_of(root, rel) as found:
            if found is None:
                yield None
                return
            try:
                fd = os.open(found[1], flags, dir_fd=found[0])
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    yield None
                    return
                raise
    try:
        yield fd
    finally:
        os.close(fd)


def lstat(root: Path, rel: str) -> os.stat_result | None:
    """`rel`'s own status (symlinks not followed), or None if it is not in the workspace."""
    if rel == ROOT:
        fd = open_root(root)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)
    with parent_of(root, rel) as found:
        if found is None:
            return None
        try:
            return os.stat(found[1], dir_fd=found[0], follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None


def describe(root: Path, rel: str) -> str:
    st = lstat(root, rel)
    if st is None:
        return "missing"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    return "a file" if stat.S_ISREG(st.st_mode) else "a special file"


def chmod(root: Path, rel: str, mode: int) -> None:
    """Set the mode of the directory `rel` (never of what a symlink there points to)."""
    with directory(root, rel) as fd:
        if fd is None:
            raise NotBeneath(f"cannot set the mode of {rel}: it is {describe(root, rel)}")
        os.chmod(f"/proc/self/fd/{fd}", mode)  # an O_PATH descriptor has no fchmod


def accessible(root: Path, rel: str, mode: int) -> bool:
    """Whether this process may use the directory `rel` so (`os.access` modes)."""
    with directory(root, rel) as fd:
        return fd is not None and os.access(f"/proc/self/fd/{fd}", mode)


def subtree(root: Path, rel: str) -> list[str]:
    """`rel` and, if it is a real directory, every path below it (symlinks not followed)."""
    found = [rel]
    with directory(root, rel, LIST_FLAGS) as fd:
        if fd is None:
            return found
        _below(fd, "" if rel == ROOT else rel, found)
    return found


def _below(fd: int, base: str, found: list[str]) -> None:
    with os.scandir(fd) as entries:
        items = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in items:
        rel = f"{base}/{name}" if base else name
        found.append(rel)
        if not is_dir:
            continue
        try:
            inner = os.open(name, LIST_FLAGS, dir_fd=fd)
        except OSError:  # replaced meanwhile, or unreadable: nothing of it is listed
            continue
        try:
            _below(inner, rel, found)
        finally:
            os.close(inner)
