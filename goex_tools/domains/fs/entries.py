"""The state of one path, as recorded before and after an action: an `Entry`.

Entries compare type, permission bits, size, content hash and link target (never mtimes),
which is exactly what a rollback must bring back. Workspace paths are read beneath the
workspace root without following symlinks (`beneath`): a path below a symlink is absent.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from goex_tools.domains.fs import beneath
from goex_tools.domains.fs.errors import UnsupportedFile
from goex_tools.domains.fs.store import BlobStore, hash_fd

EntryType = Literal["absent", "file", "dir", "symlink"]


class Entry(BaseModel):
    """A path's state. `file`: mode, size, sha256; `dir`: mode; `symlink`: target."""

    model_config = ConfigDict(frozen=True)

    type: EntryType
    mode: int | None = None  # permission bits, e.g. 0o644
    size: int | None = None
    sha256: str | None = None
    target: str | None = None

    @property
    def exists(self) -> bool:
        return self.type != "absent"


ABSENT = Entry(type="absent")


def capture(root: Path, rel: str, store: BlobStore) -> Entry:
    """The entry of the workspace path `rel`, its content copied into `store`."""
    return _at_path(root, rel, store)


def observe(root: Path, rel: str) -> Entry:
    """The entry of the workspace path `rel`, hashed but not stored (to compare)."""
    return _at_path(root, rel, None)


def capture_layer(path: Path, store: BlobStore) -> Entry:
    """The entry of a file goex owns outside the workspace (an overlay's upper layer, which
    no process writes any more), moved into `store`: the layer is consumed."""
    st = os.lstat(path)
    kind = _kind(st, path.name)
    if kind == "symlink":
        return Entry(type="symlink", target=os.readlink(path))
    if kind == "dir":
        return Entry(type="dir", mode=stat.S_IMODE(st.st_mode))
    sha, size = store.adopt(path)
    return Entry(type="file", mode=stat.S_IMODE(st.st_mode), size=size, sha256=sha)


def matches(root: Path, rel: str, entry: Entry) -> bool:
    """Whether `rel` is in state `entry`; hashes a file only when everything else agrees."""
    with beneath.parent_of(root, rel) if rel != beneath.ROOT else _root_parent(root) as found:
        if found is None:
            return entry.type == "absent"
        dirfd, name = found
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            kind = _kind(st, rel)
        except (FileNotFoundError, NotADirectoryError):
            return entry.type == "absent"
        except UnsupportedFile:
            return False
        if kind != entry.type:
            return False
        if kind == "symlink":
            return os.readlink(name, dir_fd=dirfd) == entry.target
        if stat.S_IMODE(st.st_mode) != entry.mode:
            return False
        if kind == "dir":
            return True
        if st.st_size != entry.size:
            return False
        fd = _open_file(dirfd, name, st, rel)
        try:
            return hash_fd(fd) == entry.sha256
        finally:
            os.close(fd)


def manifest(root: Path) -> dict[str, Entry]:
    """Every path below `root` (symlinks not followed) -> its entry, hashed, not stored."""
    found = {rel: observe(root, rel) for rel in beneath.subtree(root, beneath.ROOT)[1:]}
    return dict(sorted(found.items()))


class _root_parent:
    """`parent_of` for the root itself: its own descriptor and the name "." (fstatat of "."
    is the directory itself)."""

    def __init__(self, root: Path) -> None:
        self.fd = beneath.open_root(root)

    def __enter__(self) -> tuple[int, str]:
        return self.fd, "."

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _at_path(root: Path, rel: str, store: BlobStore | None) -> Entry:
    with beneath.parent_of(root, rel) if rel != beneath.ROOT else _root_parent(root) as found:
        if found is None:  # below a symlink or a file: not a path of the workspace
            return ABSENT
        dirfd, name = found
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return ABSENT
        kind = _kind(st, rel)
        mode = stat.S_IMODE(st.st_mode)
        if kind == "symlink":
            return Entry(type="symlink", target=os.readlink(name, dir_fd=dirfd))
        if kind == "dir":
            return Entry(type="dir", mode=mode)
        fd = _open_file(dirfd, name, st, rel)
        try:
            if store is None:
                return Entry(type="file", mode=mode, size=st.st_size, sha256=hash_fd(fd))
            sha, size = store.put_fd(fd)
        finally:
            os.close(fd)
        return Entry(type="file", mode=mode, size=size, sha256=sha)


def _open_file(dirfd: int, name: str, st: os.stat_result, rel: str) -> int:
    """Open the regular file `name` seen as `st`, refusing anything swapped in meanwhile."""
    fd = os.open(name, beneath.READ_FLAGS, dir_fd=dirfd)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
        os.close(fd)
        raise beneath.NotBeneath(f"{rel} was replaced while goex read it; nothing was changed")
    return fd


def _kind(st: os.stat_result, shown: str) -> EntryType:
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise UnsupportedFile(
        f"{shown} is neither a file, a directory nor a symlink (a device, FIFO or socket); "
        f"goex cannot version it"
    )
