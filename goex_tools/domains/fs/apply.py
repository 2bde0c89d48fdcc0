"""Bringing workspace paths to their recorded before- or after-state, refusing on conflicts.

The same code applies an action (to `after`), keeps a held one (to `after`), and undoes or
discards one (to `before`). A path already in the target state is left alone, so a crash in
the middle is repaired by running it again. A path in neither recorded state was changed by
someone else: nothing is touched and a conflict names it (unless `force`).
A crash while a path changes type (a directory becoming a file) leaves it absent for a
moment, in neither state: recovery then calls the step unknown and asks a person.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from goex_tools.domains.fs.changes import PathChange, Side
from goex_tools.domains.fs.entries import Entry, observe
from goex_tools.domains.fs.errors import FsError, UnsupportedFile
from goex_tools.domains.fs.store import BlobStore
from goex_tools.errors import CompensationConflict, GoexError

MAX_NAMED = 10


def materialize(
    root: Path,
    store: BlobStore,
    changes: list[PathChange],
    side: Side,
    *,
    force: bool = False,
    conflict: type[GoexError] = CompensationConflict,
    hint: str | Callable[[], str] = "",
) -> list[PathChange]:
    """Make every path match its `side` entry; return the changes that needed work.

    `hint` (or the function giving it, called only on a conflict) ends a conflict's message.
    """
    other: Side = "after" if side == "before" else "before"
    todo: list[PathChange] = []
    strangers: list[str] = []
    for change in changes:
        seen = _observed(root / change.path)
        if seen != change.side(side):
            todo.append(change)
            if seen != change.side(other):
                strangers.append(change.shown)
    if strangers and not force:
        raise conflict(_conflict_message(strangers, hint if isinstance(hint, str) else hint()))
    missing = [c.shown for c in todo if (sha := c.side(side).sha256) and not store.has(sha)]
    if missing:
        raise FsError(
            f"the store {store.root} lacks the recorded content of {', '.join(missing[:MAX_NAMED])}"
            f" (was it deleted or moved?); nothing was touched"
        )
    opened = _open_parents(root, todo)
    try:
        for change in sorted(todo, key=_depth, reverse=True):
            _clear(root / change.path, change.side(side), force, conflict)
        for change in sorted(todo, key=_depth):
            _create(root / change.path, change.side(side), store)
    finally:
        for directory, mode in sorted(opened.items(), reverse=True):
            if os.path.isdir(directory):
                os.chmod(directory, mode)
    for change in sorted(todo, key=_depth, reverse=True):
        entry = change.side(side)
        if entry.type == "dir" and entry.mode is not None:
            os.chmod(root / change.path, entry.mode)
    return todo


def _observed(path: Path) -> Entry | None:
    """What `path` holds now (hashed, not stored), or None if goex cannot version it: each
    path is read once to tell whether it is in the target state, the other one, or neither."""
    try:
        return observe(path)
    except UnsupportedFile:
        return None


def _open_parents(root: Path, todo: list[PathChange]) -> dict[str, int]:
    """Make the directories we must write in writable for now; return their modes to put back.

    Root may write anywhere, an ordinary user may not: undoing `chmod 555 dir` after a file
    in `dir` changed needs `dir` writable before its own mode comes back.
    """
    opened: dict[str, int] = {}
    if os.geteuid() == 0:
        return opened
    for change in todo:
        parts = change.path.split("/")[:-1]
        for depth in range(len(parts) + 1):
            directory = os.path.join(root, *parts[:depth])
            if directory in opened or os.access(directory, os.W_OK | os.X_OK):
                continue
            if not os.path.isdir(directory) or os.path.islink(directory):
                break
            mode = os.lstat(directory).st_mode & 0o7777
            try:
                os.chmod(directory, mode | 0o700)
            except OSError:  # not ours, or a read-only filesystem: the write will say so
                break
            opened[directory] = mode
    return opened


def _depth(change: PathChange) -> int:
    return change.path.count("/")


def _clear(path: Path, target: Entry, force: bool, conflict: type[GoexError]) -> None:
    """Remove what is at `path` unless it already has the target's type (dirs are kept)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        if target.type == "dir":
            return
        try:
            os.rmdir(path)
        except OSError:
            if not force:
                raise conflict(
                    f"{path} holds files that goex did not record for this step; "
                    f"nothing was removed there (force overwrites)"
                ) from None
            shutil.rmtree(path)
    elif target.type != "file":  # files are replaced atomically by _create
        os.unlink(path)


def _create(path: Path, entry: Entry, store: BlobStore) -> None:
    if entry.type == "dir":
        if not path.is_dir() or path.is_symlink():
            path.mkdir(mode=0o700)
            if entry.mode is not None and entry.mode & 0o700 == 0o700:
                os.chmod(path, entry.mode)  # final at once: a crash leaves a recorded state
    elif entry.type == "symlink":
        assert entry.target is not None
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(entry.target, path)
    elif entry.type == "file":
        assert entry.sha256 is not None and entry.mode is not None
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".goex-")
        try:
            with os.fdopen(fd, "wb") as dst, open(store.name(entry.sha256), "rb") as src:
                shutil.copyfileobj(src, dst)
                dst.flush()  # before the mode: a later write would clear set-id bits
                os.fchmod(dst.fileno(), entry.mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _conflict_message(paths: list[str], hint: str) -> str:
    named = ", ".join(paths[:MAX_NAMED])
    more = f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    text = f"changed since it was recorded: {named}{more}; nothing was touched"
    return f"{text}. {hint}" if hint else text


def hard_link_note(root: Path, changes: list[PathChange]) -> str | None:
    """A note for the step when it replaces files that have other names (hard links): those
    names keep the old content, as after any atomic rewrite (and undo restores just this one)."""
    linked = []
    for change in changes:
        if change.before.type != "file" or change.after.type != "file":
            continue
        try:
            if os.lstat(root / change.path).st_nlink > 1:
                linked.append(change.shown)
        except OSError:
            continue
    if not linked:
        return None
    named = ", ".join(linked[:MAX_NAMED])
    return f"hard links broken: {named} rewritten; their other names keep the old file"
