"""The state of one path, as recorded before and after an action: an `Entry`.

Entries compare type, permission bits, size, content hash and link target (never mtimes),
which is exactly what a rollback must bring back.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from goex_tools.domains.fs.errors import UnsupportedFile
from goex_tools.domains.fs.store import BlobStore, hash_file

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


def capture(path: Path, store: BlobStore, *, consume: bool = False) -> Entry:
    """The entry of `path` (symlinks not followed), its content copied into `store`
    (moved, if `consume`: for a file on the store's filesystem that nobody needs after)."""
    return _entry(path, store, consume)


def observe(path: Path) -> Entry:
    """The entry of `path`, hashed but not stored (to compare with a recorded entry)."""
    return _entry(path, None)


def matches(path: Path, entry: Entry) -> bool:
    """Whether `path` is in state `entry`; hashes a file only when everything else agrees."""
    try:
        st = os.lstat(path)
        kind = _kind(st, path)
    except (FileNotFoundError, NotADirectoryError):
        return entry.type == "absent"
    except UnsupportedFile:
        return False
    if kind != entry.type:
        return False
    if kind == "symlink":
        return os.readlink(path) == entry.target
    if stat.S_IMODE(st.st_mode) != entry.mode:
        return False
    if kind == "dir":
        return True
    return st.st_size == entry.size and hash_file(path) == entry.sha256


def manifest(root: Path) -> dict[str, Entry]:
    """Every path below `root` (symlinks not followed) -> its entry, hashed, not stored."""
    found: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = observe(path)
    return dict(sorted(found.items()))


def _entry(path: Path, store: BlobStore | None, consume: bool = False) -> Entry:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    kind = _kind(st, path)
    mode = stat.S_IMODE(st.st_mode)
    if kind == "symlink":
        return Entry(type="symlink", target=os.readlink(path))
    if kind == "dir":
        return Entry(type="dir", mode=mode)
    if store is None:
        return Entry(type="file", mode=mode, size=st.st_size, sha256=hash_file(path))
    sha, size = store.adopt(path) if consume else store.put_file(path)
    return Entry(type="file", mode=mode, size=size, sha256=sha)


def _kind(st: os.stat_result, path: Path) -> EntryType:
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise UnsupportedFile(
        f"{path} is neither a file, a directory nor a symlink (a device, FIFO or socket); "
        f"goex cannot version it"
    )
