"""Running a command unprivileged when goex runs as root: idmapped overlay layers.

A command must not run as root (it could read every root-only file the sandbox shows), yet
the workspace of a goex running as root belongs to root, and the command must write it. So
the overlay's layers are idmapped mounts (Linux 5.19+, filesystems that allow it, such as
ext4, xfs, btrfs, tmpfs) that swap root and the sandbox user: through them root's files
belong to the sandbox user, which writes them; what it writes lands on disk as root's, so
goex reads the upper layer as before. Other owners are shown as they are.

The mounts are detached (`open_tree(OPEN_TREE_CLONE)`), exist only as descriptors passed to
the mounting process (`/proc/self/fd/N` as layer paths), and vanish with it: a crash leaves
no mount behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from goex_tools.sandbox.base import Layers, SandboxUnavailable
from goex_tools.sandbox.overlay import unprivileged

SANDBOX_UID = 65534  # nobody / nogroup on Debian and most distributions
_TOP = 4294967295  # (uid_t)-1, never a valid id

_OPEN_TREE = 428  # same number on every architecture (new syscalls since 5.2 share one table)
_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_AT_EMPTY_PATH = 0x1000
_MOUNT_ATTR_IDMAP = 0x00100000
_AT_FDCWD = -100


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_lock = threading.Lock()
_userns: int | None = None


def id_map(sandbox: int = SANDBOX_UID) -> str:
    """uid_map/gid_map lines: root <-> `sandbox`, everyone else as they are."""
    return (
        f"0 {sandbox} 1\n{sandbox} 0 1\n1 1 {sandbox - 1}\n"
        f"{sandbox + 1} {sandbox + 1} {_TOP - sandbox - 1}\n"
    )


def userns_fd() -> int:
    """A user namespace holding `id_map` (made once per process; kept open)."""
    global _userns
    with _lock:
        if _userns is None:
            _userns = _make_userns()
        return _userns


def _make_userns() -> int:
    holder = subprocess.Popen(["unshare", "--user", "cat"], stdin=subprocess.PIPE)
    try:
        mine = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{holder.pid}/ns/user") != mine:
                    break
            if holder.poll() is not None or time.monotonic() > deadline:
                raise OSError("could not create a user namespace for the idmapped layers")
            time.sleep(0.0005)
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{holder.pid}/{name}", "w") as handle:
                handle.write(id_map())
        return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()


def idmapped(path: Path) -> int:
    """A detached, idmapped copy of the mount at `path` (a descriptor; close it when done)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC
    fd = int(libc.syscall(_OPEN_TREE, _AT_FDCWD, os.fsencode(path), flags))
    if fd < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"open_tree({path}): {os.strerror(errno)}")
    attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd())
    done = libc.syscall(_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH, ctypes.byref(attr), 32)
    if done < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise OSError(errno, f"cannot idmap a mount of {path}: {os.strerror(errno)}")
    return fd


def idmapped_layers(layers: Layers, kept: list[int]) -> tuple[int, int] | None:
    """As root: idmapped mounts of the workspace and of the scratch directory, their
    descriptors added to `kept` (close them once the overlay is mounted)."""
    if unprivileged():
        return None
    try:
        lower = idmapped(layers.lower)
        kept.append(lower)
    except OSError as exc:
        raise SandboxUnavailable(
            f"the overlay over {layers.lower} could not be mounted, so the command did not run: "
            f"its owners cannot be mapped for an unprivileged command ({exc.strerror})"
        ) from None
    try:
        scratch = idmapped(layers.upper.parent)
        kept.append(scratch)
        return lower, scratch
    except OSError as exc:
        raise SandboxUnavailable(
            f"the overlay's scratch directory {layers.upper.parent} could not be mounted, so the "
            f"command did not run: {exc.strerror}"
        ) from None


def idmap_problem() -> str | None:
    """As root: None if the layers of an overlay can be idmapped here, else why not."""
    if unprivileged():
        return None
    with tempfile.TemporaryDirectory(prefix="goex-idmap-check-") as tmp:
        try:
            fd = idmapped(Path(tmp))
        except OSError as exc:
            return (
                f"idmapped mounts do not work here ({exc.strerror}): a root goex cannot run "
                f"commands as an unprivileged user"
            )
        with contextlib.suppress(OSError):
            os.close(fd)
    return None
