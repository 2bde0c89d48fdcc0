"""Recording an action's changes before they are applied: before-images from the workspace,
after-images from the action's arguments (file tools) or from the overlay's upper layer
(shell commands). Cost grows with the paths touched, never with the workspace's size.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from goex_tools.domains.fs.changes import PathChange, effective
from goex_tools.domains.fs.entries import ABSENT, Entry, capture, capture_layer
from goex_tools.domains.fs.errors import UnsupportedFile
from goex_tools.domains.fs.paths import subtree
from goex_tools.domains.fs.store import BlobStore
from goex_tools.sandbox.overlay import opaque_xattrs

NEW_FILE_MODE = 0o644
NEW_DIR_MODE = 0o755
ROOT = "."  # the workspace directory itself (only its mode can change)


class Plan:
    """Touched paths -> (before, after); the before-image of each is captured once."""

    def __init__(self, root: Path, store: BlobStore) -> None:
        self.root = root
        self.store = store
        self._before: dict[str, Entry] = {}
        self._after: dict[str, Entry] = {}

    def before(self, rel: str) -> Entry:
        if rel not in self._before:
            self._before[rel] = capture(self.root, rel, self.store)
        return self._before[rel]

    def set(self, rel: str, after: Entry) -> None:
        self.before(rel)
        self._after[rel] = after

    def new_dir(self, rel: str) -> None:
        self.set(rel, Entry(type="dir", mode=NEW_DIR_MODE))

    def new_file(self, rel: str, data: bytes, mode: int) -> None:
        sha = self.store.put_bytes(data)
        self.set(rel, Entry(type="file", mode=mode, size=len(data), sha256=sha))

    def changes(self) -> list[PathChange]:
        """The recorded changes, in path order, without paths that end as they began."""
        recorded = [
            PathChange(path=rel, before=self._before[rel], after=after)
            for rel, after in sorted(self._after.items())
        ]
        return effective(recorded)


def plan_upper(root: Path, upper: Path, store: BlobStore) -> list[PathChange]:
    """The changes an overlay's upper layer holds over `root` (its lower layer).

    The upper layer's files are moved into the store: the layer is consumed.
    """
    plan = Plan(root, store)
    _visit(plan, upper, "")
    mode = stat.S_IMODE(os.lstat(upper).st_mode)  # the merged root shows the upper dir's mode
    if mode != plan.before(ROOT).mode:
        plan.set(ROOT, Entry(type="dir", mode=mode))  # e.g. `chmod 700 .`
    return plan.changes()


def _visit(plan: Plan, directory: Path, base: str) -> None:
    with os.scandir(directory) as found:
        entries = sorted(found, key=lambda e: e.name)
    for item in entries:
        rel = f"{base}/{item.name}" if base else item.name
        st = item.stat(follow_symlinks=False)
        is_dir = stat.S_ISDIR(st.st_mode)
        whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        if whiteout:
            after = ABSENT
        elif is_dir:
            after = Entry(type="dir", mode=stat.S_IMODE(st.st_mode))
        else:
            try:
                after = capture_layer(Path(item.path), plan.store)
            except UnsupportedFile:
                raise UnsupportedFile(
                    f"the command left {rel} as a device, FIFO or socket, which goex cannot "
                    f"version; nothing was applied to the workspace"
                ) from None
        plan.set(rel, after)
        if plan.before(rel).type == "dir" and (not is_dir or _opaque(Path(item.path))):
            for hidden in subtree(plan.root, rel)[1:]:  # lower contents now gone
                plan.set(hidden, ABSENT)
        if is_dir:
            _visit(plan, Path(item.path), rel)


def _opaque(directory: Path) -> bool:
    for name in opaque_xattrs():
        try:
            if os.getxattr(directory, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False
