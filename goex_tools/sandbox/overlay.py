"""An overlay over the workspace, mounted in a private mount namespace.

The command's writes land in the overlay's upper directory, never in the workspace, so what
a command changed is read from the upper directory in time proportional to the change.
As root the namespace is made with `unshare -m`; an ordinary user gets a user namespace too
(`unshare -Urm`) and the overlay needs `userxattr`. The mount vanishes with the namespace.
Every command also runs in a PID namespace of its own (bwrap makes one; for the other
backends the mount namespace comes with one): when the command ends, every process it left
behind (even one that called `setsid`) is killed with it, whatever the sandbox backend.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

from goex_tools.sandbox.base import Execution, Layers, SandboxUnavailable

# Rejected in overlay mount options, which are comma-separated and use ':' between lowerdirs.
_UNSAFE = (",", ":", "\\", "\n")

# $4: goex's pid (its parent's), "p" and goex's pid (behind a fork into a PID namespace:
# goex must still be alive), or "-": a chain whose goex died before the chain could be told
# to die with it (the pdeath signal is set by its first program, or by unshare in the child
# it forks, a moment after they start) goes no further.
# $5: cgroup.procs files to join before anything forks. The sentinel ($3: a file beside the
# layers, or a pipe the caller reads) tells a failed mount from a command's own exit code.
_MOUNT_THEN_EXEC = (
    'case "$4" in -) ;; p*) a=; { while read -r k v _; do [ "$k" = State: ] && '
    '[ "$v" != Z ] && a=1; done < "/proc/${4#p}/status"; } 2>/dev/null; [ -n "$a" ] || exit 125 ;; '
    '*) [ "$PPID" = "$4" ] || exit 125 ;; esac; '
    'for f in $5; do echo $$ > "$f" || exit 125; done; '
    'mount -t overlay goex-overlay -o "$1" "$2" && echo mounted > "$3" && shift 5 && exec "$@"'
)
# The same check for a chain that forks into a PID namespace first (its shell has no parent
# to look at): made right after the pdeath signal is set.
_PARENT_ALIVE = '[ "$PPID" = "$0" ] || exit 125; exec "$@"'

MOUNTED = b"mounted\n"


def make_layers(lower: Path, scratch: Path, *, hidden: list[Path] | None = None) -> Layers:
    """Create empty upper/work/merged directories under `scratch` for an overlay on `lower`;
    `hidden` directories are kept out of the command's sight (where the backend can)."""
    for path in (lower, scratch):
        if any(c in str(path) for c in _UNSAFE):
            raise SandboxUnavailable(
                f"{path} contains one of {' '.join(_UNSAFE[:3])}, which overlay mount options "
                f"cannot express; use a workspace and store path without them"
            )
    layers = Layers(
        lower=lower,
        upper=scratch / "upper",
        work=scratch / "work",
        merged=scratch / "merged",
        hidden=hidden or [],
    )
    for path in (layers.upper, layers.work, layers.merged):
        path.mkdir(parents=True)
    _mirror_root(lower, layers.upper)
    return layers


def _mirror_root(lower: Path, upper: Path) -> None:
    """Give the upper directory the workspace root's mode (and, as root, owner): overlayfs
    shows the merged root with the upper directory's attributes."""
    st, have = os.stat(lower), os.stat(upper)  # a change only where needed (no inode write)
    if not unprivileged() and (have.st_uid, have.st_gid) != (st.st_uid, st.st_gid):
        with contextlib.suppress(OSError):  # best effort (e.g. root squashed on NFS)
            os.chown(upper, st.st_uid, st.st_gid)
    if stat.S_IMODE(have.st_mode) != stat.S_IMODE(st.st_mode):
        os.chmod(upper, stat.S_IMODE(st.st_mode))


def remove_layers(layers: Layers) -> None:
    """Delete the scratch directories, including those we may not write: overlayfs leaves
    its work dir with mode 000, and a command may have run `chmod 555` on a directory
    (which stops only an ordinary user: root skips the walk that opens them up)."""
    remove_tree(layers.upper.parent)


def remove_tree(scratch: Path) -> None:
    """`remove_layers` for a scratch directory known only by its path. An overlay still
    mounted there on the host (the docker backend's, left by a killed process) is detached
    first: deleting through it would only fill its upper layer."""
    detach_below(scratch)
    if unprivileged():
        with contextlib.suppress(OSError):
            _make_writable(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    if scratch.exists():  # root without CAP_DAC_OVERRIDE, say: open everything up, again
        with contextlib.suppress(OSError):
            _make_writable(scratch)
        shutil.rmtree(scratch, ignore_errors=True)


def detach_below(directory: Path) -> None:
    """Detach (lazily) every mount of this mount namespace at or below `directory`."""
    top = os.path.realpath(directory)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
            points = [_unescape(line.split(" ")[4]) for line in info]
    except OSError:
        return
    below = [p for p in points if p == top or p.startswith(top + "/")]
    for point in sorted(set(below), key=len, reverse=True):  # the deepest first
        with contextlib.suppress(OSError):  # best effort: what stays mounted stays, unharmed
            detach(Path(point))


def detach(mountpoint: Path) -> None:
    """umount2(MNT_DETACH): the mount leaves the tree now, and goes once nothing uses it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(os.fsencode(mountpoint), _MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        if errno not in (22, 2):  # EINVAL: not a mount point (any more); ENOENT: gone
            raise OSError(errno, f"cannot unmount {mountpoint}: {os.strerror(errno)}")


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


_MNT_DETACH = 2


class _Remover:
    """Removes layers in a background thread, one per process: a command's result need not
    wait for its ~20 scratch directories to be deleted (they hold nothing anyone reads).
    Layers wait until the next command starts (`go`): its sandbox takes a while to set up,
    and the deleting is done meanwhile, not during whatever follows a command (often an
    undo, on the same disk). Whatever is still waiting when the interpreter exits is
    removed then."""

    def __init__(self) -> None:
        self._waiting: list[Layers] = []
        self._queue: list[Layers] = []
        self._busy = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, layers: Layers) -> None:
        with self._changed:
            self._waiting.append(layers)

    def go(self) -> None:
        """Start removing what waits (in the background)."""
        with self._changed:
            if not self._waiting:
                return
            self._queue += self._waiting
            self._waiting = []
            self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="goex-layers", daemon=True)
                self._thread.start()

    def drain(self, timeout: float = 60.0) -> None:
        """Remove what waits and wait until it is gone."""
        self.go()
        with self._changed:
            self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def forget_thread(self) -> None:
        """After a fork: the thread is the parent's; a child starts its own when it needs one."""
        self._changed = threading.Condition()
        self._thread, self._busy = None, 0

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                layers = self._queue.pop(0)
                self._busy += 1
            try:
                remove_layers(layers)
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()


_remover = _Remover()
atexit.register(_remover.drain)
os.register_at_fork(after_in_child=_remover.forget_thread)


def remove_layers_later(layers: Layers) -> None:
    """`remove_layers`, done in the background while the next command starts (`_Remover`)."""
    _remover.put(layers)


def remove_waiting_layers() -> None:
    """Start removing (in the background) the layers `remove_layers_later` was given."""
    _remover.go()


def wait_for_removals(timeout: float = 60.0) -> None:
    """Remove the layers given to `remove_layers_later`; return once they are gone."""
    _remover.drain(timeout)


def _make_writable(directory: Path) -> None:
    os.chmod(directory, 0o700)
    with os.scandir(directory) as found:
        subdirs = [Path(item.path) for item in found if item.is_dir(follow_symlinks=False)]
    for subdir in subdirs:
        _make_writable(subdir)


def unprivileged() -> bool:
    return os.geteuid() != 0


def as_caller() -> list[str]:
    """argv prefix that turns the user namespace's root back into the caller, so that a
    command (say `tar x` of someone else's archive) acts as the user it is, not as a root
    that cannot chown; nothing for root, who needs no user namespace."""
    if not unprivileged():
        return []
    return ["unshare", f"--map-user={os.geteuid()}", f"--map-group={os.getegid()}"]


def opaque_xattrs() -> tuple[str, ...]:
    """The xattr names overlayfs uses to mark a directory whose lower contents are hidden."""
    return ("trusted.overlay.opaque", "user.overlay.opaque")


def mount_options(layers: Layers, layer_fds: tuple[int, int] | None = None) -> str:
    """Overlay options; metacopy and redirects stay off so the upper layer holds whole files.

    `userxattr` already turns redirects off (`nofollow`), and naming `redirect_dir` beside it
    is refused by kernels built to always follow redirects (Debian's), so it is left out.
    `volatile` (where the kernel has it) skips the fsync overlayfs makes of every file it
    copies up: the upper layer is scratch that goex reads right after the command and then
    deletes (a crash discards it), and nothing from it reaches the workspace or the store
    through an fsync anyway, so the syncs bought no durability (they cost ~0.2 ms a file).
    Asked for right before every mount, it also clears the mark a volatile mount of the same
    layers left, which would refuse the next one.
    `layer_fds`: descriptors of (idmapped) mounts of the lower directory and of the upper and
    work directories' parent, named by /proc/self/fd paths (see sandbox.idmap).
    """
    options = f"lowerdir={layers.lower},upperdir={layers.upper},workdir={layers.work}"
    if layer_fds is not None:
        lower, scratch = (f"/proc/self/fd/{fd}" for fd in layer_fds)
        options = f"lowerdir={lower},upperdir={scratch}/upper,workdir={scratch}/work"
    _clear_volatile_mark(layers)
    if unprivileged():
        options += ",userxattr,metacopy=off"
    else:
        options += ",redirect_dir=off,metacopy=off"
    return options + ",volatile" if has_volatile(os.uname().release) else options


def _clear_volatile_mark(layers: Layers) -> None:
    """Let these layers be mounted again (the test-bed runs an action, then its undo): a
    volatile mount leaves `work/work/incompat/volatile`, and overlayfs refuses to mount over it."""
    inner = layers.work / "work"
    if inner.exists():
        with contextlib.suppress(OSError):  # overlayfs leaves it mode 000; a failure shows at mount
            _make_writable(inner)
        shutil.rmtree(inner / "incompat", ignore_errors=True)


def has_volatile(release: str) -> bool:
    """Whether a kernel of this release (`uname -r`) has overlayfs's `volatile` (Linux 5.10)."""
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) >= (5, 10)


def namespaced(
    layers: Layers,
    argv: list[str],
    *,
    own_pids: bool = True,
    report_to: int | None = None,
    layer_fds: tuple[int, int] | None = None,
    join: list[str] | None = None,
) -> list[str]:
    """argv that mounts the overlay in a fresh mount namespace, then execs `argv` inside it.

    - `own_pids=False` is for an `argv` that makes its own PID namespace and dies with its
      parent (bwrap): the chain then stays one process, with no extra namespace and fork.
    - `report_to`: a pipe (passed to the process) that gets `MOUNTED` once the overlay is
      mounted, instead of a sentinel file beside the layers (one file less to create).
    - `layer_fds`: idmapped layers to mount instead of the layers' paths (pass them along).
    - `join`: cgroup.procs files the chain joins before it starts anything.
    """
    # Dies with the thread that started it (a crashed agent leaves no command running over
    # a workspace nobody records); its PID namespace takes every leftover process with it.
    unshare = ["setpriv", "--pdeathsig", "KILL"]
    parent = str(os.getpid())
    if own_pids:
        unshare += ["sh", "-c", _PARENT_ALIVE, parent]
        parent = f"p{parent}"
    unshare += ["unshare", "-Urm" if unprivileged() else "-m", "--propagation", "private"]
    if own_pids:
        unshare += ["--pid", "--fork", "--kill-child"]
    options = mount_options(layers, layer_fds)
    mount = ["sh", "-c", _MOUNT_THEN_EXEC, "goex-overlay", options, str(layers.merged)]
    sentinel = f"/dev/fd/{report_to}" if report_to is not None else str(_sentinel(layers))
    return [*unshare, *mount, sentinel, parent, " ".join(join or []), *argv]


def _sentinel(layers: Layers) -> Path:
    return layers.upper.parent / "mounted"


def require_mounted(
    layers: Layers, execution: Execution, reported: bytes | None = None
) -> Execution:
    """`execution`, unless the overlay was never mounted: then the command never ran, and its
    exit code and stderr are the mount's, which must not pass for the command's.
    `reported`: what the `report_to` pipe of `namespaced` delivered, if one was used."""
    mounted = _sentinel(layers).exists() if reported is None else reported.startswith(MOUNTED)
    if execution.timed_out or mounted:
        return execution
    raise SandboxUnavailable(
        f"the overlay over {layers.lower} (layers in {layers.upper.parent}) could not be "
        f"mounted, so the command did not run: {execution.stderr.strip()[-500:]}"
    )


def overlay_problem() -> str | None:
    """None if an overlay can be mounted in a private namespace here, else the reason."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return "`unshare` and `setpriv` (util-linux) are not installed"
    with tempfile.TemporaryDirectory(prefix="goex-overlay-check-") as tmp:
        lower = Path(tmp) / "lower"
        lower.mkdir()
        layers = make_layers(lower, Path(tmp) / "scratch")
        argv = namespaced(layers, ["touch", str(layers.merged / "probe")])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        ok = done.returncode == 0 and (layers.upper / "probe").exists()
        remove_layers(layers)
    if ok:
        return None
    return f"cannot mount an overlay in a private mount namespace: {done.stderr.strip()}"
