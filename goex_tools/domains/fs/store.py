"""A content-addressed blob store outside the workspace: file contents by sha256.

Before- and after-images of the paths an action touched are kept here, never in the
workspace (nor in its `.git`), so the workspace's own history stays untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
SWEEP_AGE = 10.0  # seconds a scratch entry must be untouched before it may be swept


class BlobStore:
    """`objects/ab/cdef...` files, written once by atomic rename; safe to share by processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.scratch = root / "scratch"
        for path in (self.objects, self.scratch):
            path.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return Path(self.name(sha256))

    def name(self, sha256: str) -> str:
        """`path` as a string (no Path work: it is asked several times for every file)."""
        return f"{self.objects}/{sha256[:2]}/{sha256[2:]}"

    def has(self, sha256: str) -> bool:
        return os.path.exists(self.name(sha256))

    def put_file(self, source: Path) -> tuple[str, int]:
        """Copy `source` (a file goex owns, never a workspace path) in; its sha256 and size."""
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return self.put_fd(fd)
        finally:
            os.close(fd)

    def put_fd(self, fd: int) -> tuple[str, int]:
        """Copy the open file `fd` in (from its start); return its sha256 and size. A small file
        is hashed before it is written, so content the store already holds is not written again."""
        os.lseek(fd, 0, os.SEEK_SET)
        src = os.fdopen(os.dup(fd), "rb")  # the duplicate shares the offset, not the lifetime
        with src:
            head = src.read(CHUNK)
            if len(head) < CHUNK:  # the whole file
                sha = hashlib.sha256(head).hexdigest()
                if not self.has(sha):
                    self._write(head, sha)
                return sha, len(head)
            return self._copy(src, head)

    def _copy(self, src: BinaryIO, head: bytes) -> tuple[str, int]:
        """Copy a large file in, hashing while copying (its hash is known only at the end)."""
        digest = hashlib.sha256(head)
        size = len(head)
        fd, tmp = tempfile.mkstemp(dir=self.scratch, prefix="blob-")
        fcntl.flock(fd, fcntl.LOCK_EX)  # in use: not swept (see sweep_scratch)
        try:
            with os.fdopen(fd, "wb") as dst:
                dst.write(head)
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            self._commit(Path(tmp), digest.hexdigest())
        finally:
            Path(tmp).unlink(missing_ok=True)
        return digest.hexdigest(), size

    def adopt(self, source: Path) -> tuple[str, int]:
        """Move `source` in (it must be on the store's filesystem and be ours to consume)."""
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            sha, size = hash_fd(fd), os.fstat(fd).st_size
        finally:
            os.close(fd)
        try:
            self._commit(source, sha)
        except PermissionError:  # its directory is read-only to us (an ordinary user): copy
            return self.put_file(source)
        return sha, size

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has(sha):
            self._write(data, sha)
        return sha

    def _write(self, data: bytes, sha256: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.scratch, prefix="blob-")
        fcntl.flock(fd, fcntl.LOCK_EX)  # in use: not swept (see sweep_scratch)
        try:
            with os.fdopen(fd, "wb") as dst:
                dst.write(data)
                os.fchmod(dst.fileno(), 0o444)
            self._place(tmp, sha256)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def hold(self, path: Path) -> int:
        """Mark the scratch entry `path` as in use by this process until the returned
        descriptor is closed (`sweep_scratch` leaves it alone meanwhile)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def sweep_scratch(self, min_age: float | None = None) -> list[str]:
        """Remove what processes killed while working left in `scratch` (a command's overlay
        layers, a half-copied blob): entries nobody holds (`hold`) and untouched for
        `min_age` seconds. Returns the names removed."""
        from goex_tools.sandbox.overlay import remove_tree

        removed = []
        min_age = SWEEP_AGE if min_age is None else min_age
        now = time.time()
        with os.scandir(self.scratch) as found:
            entries = list(found)
        for entry in entries:
            try:
                if now - entry.stat(follow_symlinks=False).st_ctime < min_age:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by a live process
                os.close(fd)
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    remove_tree(Path(entry.path))
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
            finally:
                os.close(fd)
        return removed

    @contextmanager
    def lock(self, workspace: Path) -> Iterator[None]:
        """Serialise applying changes to one workspace across threads and processes."""
        name = hashlib.sha256(str(workspace).encode()).hexdigest()[:32]
        locks = self.root / "locks"
        locks.mkdir(exist_ok=True)
        with open(locks / name, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def _commit(self, tmp: Path, sha256: str) -> None:
        if self.has(sha256):
            tmp.unlink()
            return
        os.chmod(tmp, 0o444)
        self._place(str(tmp), sha256)

    def _place(self, tmp: str, sha256: str) -> None:
        """Rename a finished blob to its name (blobs are immutable: a same-named one is equal)."""
        target = self.name(sha256)
        try:
            os.replace(tmp, target)
        except FileNotFoundError:  # the first blob under this two-letter prefix
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp, target)


def hash_fd(fd: int) -> str:
    """The sha256 of the open file `fd`, read from its start (the descriptor is left open)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
