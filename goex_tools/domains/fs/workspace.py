"""`Workspace`: a directory an agent may change, through reversible, journaled tools.

    ws = Workspace("/srv/project")
    ws.write_file("notes.txt", "hello")
    result = ws.run_shell("sed -i s/a/b/ notes.txt")
    goex.rollback(run.id)                       # restores the tree byte for byte

Every tool records the before- and after-images of the paths it touches in a blob store
outside the workspace, journals an `fs.restore` compensation before applying anything, then
applies the change. The workspace's own `.git`, if any, is just files to goex.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from goex_tools.domains.fs.apply import hard_link_note, materialize
from goex_tools.domains.fs.changes import PathChange, effect_summary
from goex_tools.domains.fs.compensation import restore_compensation
from goex_tools.domains.fs.entries import ABSENT, Entry, manifest
from goex_tools.domains.fs.errors import FsError, WorkspaceChanged
from goex_tools.domains.fs.own import refuse_inside
from goex_tools.domains.fs.paths import missing_parents, relative, subtree
from goex_tools.domains.fs.plan import NEW_FILE_MODE, Plan
from goex_tools.domains.fs.results import FileResult, changed
from goex_tools.domains.fs.shell import run_shell
from goex_tools.domains.fs.store import BlobStore
from goex_tools.model import Proposal, Reversibility
from goex_tools.runtime import OUTPUT_LIMIT, StepHandle, execute
from goex_tools.sandbox import DEFAULT, Limits, get_sandbox
from goex_tools.sandbox.resources import sweep_cgroups

STORE_ENV = "GOEX_FS_STORE"
DEFAULT_STORE = Path(".goex") / "store"


class Workspace:
    """A directory an agent may change. `store` (outside it) keeps before/after images;
    `sandbox` runs its commands ("bwrap", "docker" or "none"), `image` is the docker
    sandbox's (one with your project's toolchain; default `goex-sandbox:bookworm`)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        store: str | os.PathLike[str] | None = None,
        sandbox: str = DEFAULT,
        limits: Limits | None = None,
        image: str | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise FsError(f"workspace {root} is not a directory")
        where = store or os.environ.get(STORE_ENV) or DEFAULT_STORE
        store_root = Path(os.path.realpath(where))
        if store_root == self.root or self.root in store_root.parents:
            raise FsError(f"the store {store_root} must be outside the workspace {self.root}")
        self.store = BlobStore(store_root)
        _sweep_once(self.store)
        self.sandbox = get_sandbox(sandbox, image=image)
        self.limits = limits or Limits()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, sandbox={self.sandbox.name!r})"

    # file tools

    def write_file(self, path: str, content: str) -> FileResult:
        """Create or overwrite a text file (parents are created); its mode is kept if it exists."""
        rel = self.relative(path)
        plan = self._plan()
        self._parents(plan, rel)
        current = plan.before(rel)
        if current.type not in ("file", "absent"):
            raise FsError(f"{rel} is a {current.type}, not a file; nothing was written")
        mode = current.mode if current.mode is not None else NEW_FILE_MODE
        plan.new_file(rel, content.encode("utf-8"), mode)
        return self._apply("write_file", {"path": rel, "content": _short(content)}, [rel], plan)

    def edit_file(self, path: str, old: str, new: str, *, replace_all: bool = False) -> FileResult:
        """Replace `old` with `new` in a text file; `old` must occur once (or `replace_all`)."""
        rel = self.relative(path)
        if not old:
            raise FsError(f"the text to replace in {rel} is empty; nothing was edited")
        plan = self._plan()
        current = plan.before(rel)
        if current.type != "file" or current.sha256 is None or current.mode is None:
            raise FsError(f"{rel} is not a file (it is {current.type}); nothing was edited")
        try:
            text = self.store.read(current.sha256).decode("utf-8")
        except UnicodeDecodeError:
            raise FsError(f"{rel} is not UTF-8 text; nothing was edited") from None
        found = text.count(old)
        if found == 0:
            raise FsError(f"the text to replace does not occur in {rel}; nothing was edited")
        if found > 1 and not replace_all:
            raise FsError(
                f"the text to replace occurs {found} times in {rel}; give more context or "
                f"replace_all=True; nothing was edited"
            )
        plan.new_file(rel, text.replace(old, new).encode("utf-8"), current.mode)
        inputs = {"path": rel, "old": _short(old), "new": _short(new), "replace_all": replace_all}
        return self._apply("edit_file", inputs, [rel], plan)

    def delete_path(self, path: str) -> FileResult:
        """Delete a file, symlink or directory (with everything in it)."""
        rel = self.relative(path)
        plan = self._plan()
        if not plan.before(rel).exists:
            raise FsError(f"{rel} does not exist; nothing was deleted")
        for hidden in subtree(self.root, rel):
            plan.set(hidden, ABSENT)
        return self._apply("delete_path", {"path": rel}, [rel], plan)

    def move_path(self, source: str, destination: str) -> FileResult:
        """Move or rename a path (a directory with its contents) to a path that does not exist."""
        src, dst = self.relative(source), self.relative(destination)
        plan = self._plan()
        if not plan.before(src).exists:
            raise FsError(f"{src} does not exist; nothing was moved")
        if plan.before(dst).exists:
            raise FsError(f"{dst} already exists; nothing was moved")
        if dst.startswith(src + "/"):
            raise FsError(f"cannot move {src} into itself ({dst}); nothing was moved")
        self._parents(plan, dst)
        for old in subtree(self.root, src):
            entry = plan.before(old)
            plan.set(old, ABSENT)
            plan.set(dst + old[len(src) :], entry)
        return self._apply("move_path", {"source": src, "destination": dst}, [src, dst], plan)

    def make_dir(self, path: str) -> FileResult:
        """Create a directory (and its missing parents)."""
        rel = self.relative(path)
        plan = self._plan()
        if plan.before(rel).exists:
            raise FsError(f"{rel} already exists; nothing was created")
        self._parents(plan, rel)
        plan.new_dir(rel)
        return self._apply("make_dir", {"path": rel}, [rel], plan)

    run_shell = run_shell  # sandboxed command over an overlay; see goex_tools.domains.fs.shell

    # reviewing steps

    def manifest(self) -> dict[str, Entry]:
        """Every path of the workspace with its entry: a full, comparable picture of the tree."""
        return manifest(self.root)

    # helpers shared by the tools

    def relative(self, path: str) -> str:
        return relative(self.root, path)

    def predicted(self, paths: list[str]) -> dict[str, Any]:
        return {"workspace": str(self.root), "paths": paths}

    def apply(self, changes: list[PathChange], *, hint: str, tag: str | None = None) -> None:
        """Bring the workspace to the changes' after-state (under the workspace lock);
        `tag`: the step this is for, which names goex's temporaries."""
        with self.store.lock(self.root):
            materialize(
                self.root,
                self.store,
                changes,
                "after",
                conflict=WorkspaceChanged,
                hint=hint,
                tag=tag,
            )

    def _plan(self) -> Plan:
        return Plan(self.root, self.store)

    def _parents(self, plan: Plan, rel: str) -> None:
        for parent in Path(rel).parents:
            entry = plan.before(parent.as_posix())
            if parent.as_posix() != "." and entry.exists and entry.type != "dir":
                raise FsError(f"{parent} is not a directory; nothing was changed")
        for parent_rel in missing_parents(self.root, rel):
            plan.new_dir(parent_rel)

    def _apply(self, tool: str, inputs: dict[str, Any], paths: list[str], plan: Plan) -> FileResult:
        changes = plan.changes()
        proposal = Proposal(
            tool=tool,
            domain="fs",
            inputs=inputs,
            reversibility=Reversibility.REVERSIBLE,
            compensation=restore_compensation(self.root, self.store.root, changes),
            predicted=self.predicted(paths),
        )

        def effect(handle: StepHandle) -> FileResult:
            refuse_inside(self.root, handle.run.journal)
            handle.effect.update(effect_summary(changes))
            handle.charge()  # the run's budgets take the bytes before they are written
            if note := hard_link_note(self.root, changes):
                handle.notes.append(note)
            hint = f"{tool} was planned on a different state; try again"
            self.apply(changes, hint=hint, tag=handle.id)
            return FileResult(step_id=handle.id, changes=changed(changes))

        result: FileResult = execute(proposal, effect)
        return result


_swept: set[Path] = set()


def _sweep_once(store: BlobStore) -> None:
    """On this process's first use of a store: remove what killed processes left in its
    scratch directory, and their empty cgroups."""
    if store.root in _swept:
        return
    _swept.add(store.root)
    store.sweep_scratch()
    sweep_cgroups()


def _short(text: str, limit: int = OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text)} characters]"
