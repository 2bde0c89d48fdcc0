"""Bringing workspace paths to their recorded before- or after-state, refusing on conflicts.

The same code applies an action (to `after`), keeps a held one (to `after`), and undoes or
discards one (to `before`). A path already in the target state is left alone, so a crash in
the middle is repaired by running it again. A path in neither recorded state was changed by
someone else: nothing is touched and a conflict names it (unless `force`).

Everything that can refuse is checked before the first change: a conflict, a missing
before-image, a directory holding files nobody recorded, a symlink or file where a directory
must be written. A refusal leaves the tree as it was.

Every path is reached beneath the workspace root without following symlinks (`beneath`).
New files, symlinks and directories are made under a temporary name in their final directory
and renamed into place, so a path is only ever seen in a recorded state. The temporary name
says which step made it (`.goex-<step>-...`): `sweep` removes the ones a crash left behind.
A crash while a path changes type (a directory becoming a file) leaves it absent for a
moment, in neither state: recovery then calls the step unknown and asks a person.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from goex_tools.domains.fs import beneath
from goex_tools.domains.fs.changes import PathChange, Side
from goex_tools.domains.fs.entries import Entry, observe
from goex_tools.domains.fs.errors import FsError, UnsupportedFile
from goex_tools.domains.fs.store import BlobStore
from goex_tools.errors import CompensationConflict, GoexError

MAX_NAMED = 10
TEMPORARY = ".goex-"  # goex's own temporaries in a workspace: ".goex-<tag>-<random>"


def temporary_prefix(tag: str) -> str:
    """The name every temporary made for `tag` (a step id) starts with."""
    return f"{TEMPORARY}{tag}-"


def materialize(
    root: Path,
    store: BlobStore,
    changes: list[PathChange],
    side: Side,
    *,
    force: bool = False,
    conflict: type[GoexError] = CompensationConflict,
    hint: str | Callable[[], str] = "",
    tag: str | None = None,
    ready: Callable[[], None] | None = None,
) -> list[PathChange]:
    """Make every path match its `side` entry; return the changes that needed work.

    - `hint` (or the function giving it, called only on a conflict) ends a conflict's message.
    - `tag`: the step this is done for; it names the temporaries (see `sweep`).
    - `ready`: called once every check has passed, right before the first change.

    Raises: `conflict` (nothing changed) when a path is in neither recorded state or a
    directory to remove holds unrecorded files; `NotBeneath` when a symlink or file stands
    where a directory must be written; `FsError` when the store lacks recorded content.
    """
    other: Side = "after" if side == "before" else "before"
    todo: list[PathChange] = []
    strangers: list[str] = []
    for change in changes:
        seen = observed(root, change.path)
        if seen != change.side(side):
            todo.append(change)
            if seen != change.side(other):
                strangers.append(change.shown)
    if strangers and not force:
        raise conflict(conflict_message(strangers, hint if isinstance(hint, str) else hint()))
    missing = [c.shown for c in todo if (sha := c.side(side).sha256) and not store.has(sha)]
    if missing:
        raise FsError(
            f"the store {store.root} lacks the recorded content of {', '.join(missing[:MAX_NAMED])}"
            f" (was it deleted or moved?); nothing was touched"
        )
    targets = {c.path: c.side(side) for c in todo}
    _refuse_writes_through_non_directories(root, todo, targets)
    if not force:
        _refuse_removing_unrecorded(root, todo, targets, conflict, hint)
    if ready is not None:
        ready()
    prefix = temporary_prefix(tag or secrets.token_hex(8))
    opened = _open_parents(root, todo)
    try:
        for change in sorted(todo, key=_depth, reverse=True):
            _clear(root, change.path, change.side(side), force, conflict)
        for change in sorted(todo, key=_depth):
            _create(root, change.path, change.side(side), store, prefix)
    finally:
        for rel, mode in sorted(opened.items(), reverse=True):
            st = beneath.lstat(root, rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                beneath.chmod(root, rel, mode)
    for change in sorted(todo, key=_depth, reverse=True):
        entry = change.side(side)
        if entry.type == "dir" and entry.mode is not None:
            st = beneath.lstat(root, change.path)
            if st is None or stat.S_IMODE(st.st_mode) != entry.mode:
                beneath.chmod(root, change.path, entry.mode)
    return todo


def sweep(root: Path, changes: list[PathChange], tag: str) -> list[str]:
    """Remove the temporaries a crash left while goex worked for the step `tag`: they are
    never part of any recorded state. Returns the paths removed."""
    prefix = temporary_prefix(tag)
    removed = []
    for parent in sorted({str(PurePosixPath(c.path).parent) for c in changes}):
        with beneath.directory(root, parent, beneath.LIST_FLAGS) as fd:
            if fd is None:
                continue
            try:
                names = [n for n in os.listdir(fd) if n.startswith(prefix)]
            except OSError:
                continue
            for name in names:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
                removed.append(name if parent == beneath.ROOT else f"{parent}/{name}")
    return removed


def observed(root: Path, rel: str) -> Entry | None:
    """What `rel` holds now (hashed, not stored), or None if goex cannot version it: each
    path is read once to tell whether it is in the target state, the other one, or neither."""
    try:
        return observe(root, rel)
    except UnsupportedFile:
        return None


def _refuse_writes_through_non_directories(
    root: Path, todo: list[PathChange], targets: dict[str, Entry]
) -> None:
    """Every path to be written must lie in directories that are real directories now or
    become ones here; a symlink (which could lead out of the workspace) or a file in the
    way refuses the whole change before anything is done."""
    kinds: dict[str, str] = {}
    for change in todo:
        if not targets[change.path].exists:
            continue
        for parent in reversed(PurePosixPath(change.path).parents[:-1]):
            rel = parent.as_posix()
            target = targets.get(rel)
            if target is not None:
                if target.type != "dir":
                    raise FsError(
                        f"the recorded changes put {change.shown} below {rel}, which they make "
                        f"a {target.type}; nothing was changed"
                    )
                continue
            if rel not in kinds:
                kinds[rel] = beneath.describe(root, rel)
            if kinds[rel] != "a directory":
                raise beneath.NotBeneath(
                    f"cannot write {change.shown}: {rel} is {kinds[rel]}, not a directory, and "
                    f"goex never follows it; nothing was changed"
                )


def _refuse_removing_unrecorded(
    root: Path,
    todo: list[PathChange],
    targets: dict[str, Entry],
    conflict: type[GoexError],
    hint: str | Callable[[], str],
) -> None:
    """A directory that must go may hold only paths that go too."""
    for change in todo:
        if targets[change.path].type == "dir":
            continue
        st = beneath.lstat(root, change.path)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        unknown = [
            rel
            for rel in beneath.subtree(root, change.path)[1:]
            if rel not in targets or targets[rel].exists
        ]
        if unknown:
            named = ", ".join(unknown[:MAX_NAMED])
            more = f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
            text = (
                f"{change.shown} holds files that goex did not record for this step ({named}"
                f"{more}); nothing was changed (force overwrites)"
            )
            extra = hint if isinstance(hint, str) else hint()
            raise conflict(f"{text}. {extra}" if extra else text)


def _open_parents(root: Path, todo: list[PathChange]) -> dict[str, int]:
    """Make the directories we must write in writable for now; return their modes to put back.

    Root may write anywhere, an ordinary user may not: undoing `chmod 555 dir` after a file
    in `dir` changed needs `dir` writable before its own mode comes back.
    """
    opened: dict[str, int] = {}
    if os.geteuid() == 0:
        return opened
    for change in todo:
        names = change.path.split("/")[:-1]
        for depth in range(len(names) + 1):
            rel = "/".join(names[:depth]) or beneath.ROOT
            if rel in opened:
                continue
            st = beneath.lstat(root, rel)
            if st is None or not stat.S_ISDIR(st.st_mode):
                break
            if beneath.accessible(root, rel, os.W_OK | os.X_OK):
                continue
            mode = stat.S_IMODE(st.st_mode)
            try:
                beneath.chmod(root, rel, mode | 0o700)
            except OSError:  # not ours, or a read-only filesystem: the write will say so
                break
            opened[rel] = mode
    return opened


def _depth(change: PathChange) -> int:
    return change.path.count("/")


def _clear(root: Path, rel: str, target: Entry, force: bool, conflict: type[GoexError]) -> None:
    """Remove what is at `rel` unless it already has the target's type (dirs are kept)."""
    if rel == beneath.ROOT:
        return
    with beneath.parent_of(root, rel) as found:
        if found is None:  # below a symlink or a file: nothing of the workspace is there
            return
        dirfd, name = found
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        if stat.S_ISDIR(st.st_mode):
            if target.type == "dir":
                return
            try:
                os.rmdir(name, dir_fd=dirfd)
            except OSError:
                if not force:
                    raise conflict(
                        f"{rel} holds files that goex did not record for this step; "
                        f"nothing was removed there (force overwrites)"
                    ) from None
                shutil.rmtree(name, dir_fd=dirfd)
        elif target.type != "file":  # files are replaced atomically by _create
            os.unlink(name, dir_fd=dirfd)


def _create(root: Path, rel: str, entry: Entry, store: BlobStore, prefix: str) -> None:
    """Make `rel` as `entry` under a temporary name, then rename it into place."""
    if rel == beneath.ROOT or entry.type == "absent":
        return
    with beneath.writable_parent(root, rel) as (dirfd, name):
        if entry.type == "dir":
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    return
            except FileNotFoundError:
                pass
            _place(dirfd, name, prefix, lambda tmp: _make_dir(dirfd, tmp, entry))
        elif entry.type == "symlink":
            assert entry.target is not None
            target = entry.target
            _place(dirfd, name, prefix, lambda tmp: os.symlink(target, tmp, dir_fd=dirfd))
        elif entry.type == "file":
            _place(dirfd, name, prefix, lambda tmp: _write_file(dirfd, tmp, entry, store))


def _place(dirfd: int, name: str, prefix: str, make: Callable[[str], None]) -> None:
    tmp = f"{prefix}{secrets.token_hex(4)}"
    try:
        make(tmp)
        os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        _discard(dirfd, tmp)
        raise


def _discard(dirfd: int, tmp: str) -> None:
    try:
        st = os.stat(tmp, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(tmp, dir_fd=dirfd)
    else:
        os.unlink(tmp, dir_fd=dirfd)


def _make_dir(dirfd: int, tmp: str, entry: Entry) -> None:
    """A directory with its final mode, unless that mode would stop an ordinary user from
    filling it (the last pass of `materialize` sets those once their contents are in)."""
    mode = entry.mode if entry.mode is not None else 0o755
    if os.geteuid() != 0:
        mode |= 0o700
    os.mkdir(tmp, 0o700, dir_fd=dirfd)
    if mode != 0o700:
        os.chmod(tmp, mode, dir_fd=dirfd)  # exact, whatever the umask


def _write_file(dirfd: int, tmp: str, entry: Entry, store: BlobStore) -> None:
    assert entry.sha256 is not None and entry.mode is not None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dirfd)
    with os.fdopen(fd, "wb") as dst, open(store.name(entry.sha256), "rb") as src:
        shutil.copyfileobj(src, dst)
        dst.flush()  # before the mode: a later write would clear set-id bits
        os.fchmod(dst.fileno(), entry.mode)


def conflict_message(paths: list[str], hint: str) -> str:
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
        st = beneath.lstat(root, change.path)
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            linked.append(change.shown)
    if not linked:
        return None
    named = ", ".join(linked[:MAX_NAMED])
    return f"hard links broken: {named} rewritten; their other names keep the old file"
