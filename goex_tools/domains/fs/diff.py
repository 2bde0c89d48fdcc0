"""What a step changed, for a person: added / modified / deleted paths, a unified diff for
text, size and hash for binary content. Works for applied, held and compensated steps.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import BaseModel

from goex_tools.domains.fs.changes import ChangeKind, PathChange
from goex_tools.domains.fs.compensation import parse
from goex_tools.domains.fs.entries import Entry
from goex_tools.domains.fs.store import BlobStore
from goex_tools.journal import Journal
from goex_tools.runtime import get_journal

TEXT_LIMIT = 1 << 20  # larger files are summarised like binary ones
_TEXT_BYTES = bytes({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F})


class FileDiff(BaseModel):
    """One path's change in a step: its entries before and after, and a unified diff for text."""

    path: str
    change: ChangeKind
    before: Entry
    after: Entry
    diff: str | None = None  # unified diff when both sides are text (or absent)
    summary: str  # one line: what happened, with sizes and hashes for binary content


class StepDiff(BaseModel):
    """What one filesystem step changed, path by path (`goex diff STEP`); `text()` prints it."""

    step_id: str
    tool: str
    status: str
    workspace: str
    files: list[FileDiff]

    def text(self) -> str:
        """The whole diff as text, as `goex diff` prints it."""
        lines = [f"step {self.step_id} ({self.tool}, {self.status}) in {self.workspace}"]
        for f in self.files:
            lines.append(f"{f.change:>8}  {f.path}  {f.summary}")
            if f.diff:
                lines.append(f.diff.rstrip("\n"))
        if not self.files:
            lines.append("no changes")
        return "\n".join(lines)


def diff(step_id: str, *, journal: Journal | str | None = None) -> StepDiff:
    """The changes a filesystem step made (or, if held, would make)."""
    store = journal if isinstance(journal, Journal) else get_journal(journal)
    step = store.get_step(step_id)
    args = parse(step.compensation)
    blobs = BlobStore(Path(args.store))
    return StepDiff(
        step_id=step.id,
        tool=step.tool,
        status=step.status.value,
        workspace=args.workspace,
        files=[_file_diff(c, blobs) for c in args.changes],
    )


def _file_diff(change: PathChange, blobs: BlobStore) -> FileDiff:
    old, new = _text(change.before, blobs), _text(change.after, blobs)
    text_diff = None
    if (
        old is not None
        and new is not None
        and (change.before.type, change.after.type)
        != (
            "absent",
            "absent",
        )
    ):
        text_diff = "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{change.shown}" if change.before.exists else "/dev/null",
                tofile=f"b/{change.shown}" if change.after.exists else "/dev/null",
            )
        )
    return FileDiff(
        path=change.shown,
        change=change.kind,
        before=change.before,
        after=change.after,
        diff=text_diff or None,
        summary=f"{_describe(change.before)} -> {_describe(change.after)}",
    )


def _text(entry: Entry, blobs: BlobStore) -> str | None:
    """File content as text; "" for an absent path; None for binary, large or non-files."""
    if entry.type == "absent":
        return ""
    if entry.type != "file" or entry.sha256 is None or (entry.size or 0) > TEXT_LIMIT:
        return None
    try:
        data = blobs.read(entry.sha256)
    except FileNotFoundError:
        return None
    if data.translate(None, _TEXT_BYTES):  # control bytes text never holds: binary
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _describe(entry: Entry) -> str:
    mode = oct(entry.mode or 0)[2:]
    if entry.type == "file":
        return f"file {mode} {entry.size} B sha256:{(entry.sha256 or '')[:12]}"
    if entry.type == "dir":
        return f"dir {mode}"
    if entry.type == "symlink":
        return f"symlink -> {entry.target}"
    return "absent"
