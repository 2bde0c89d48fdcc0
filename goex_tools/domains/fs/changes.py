"""What an action does to a workspace, as data: each touched path's before and after entry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from goex_tools.domains.fs.entries import Entry

Side = Literal["before", "after"]
ChangeKind = Literal["added", "deleted", "modified", "mode", "type"]


class PathChange(BaseModel):
    """One workspace-relative path (POSIX separators) and its state before and after."""

    model_config = ConfigDict(frozen=True)

    path: str
    before: Entry
    after: Entry

    @property
    def shown(self) -> str:
        """The path for people and JSON: bytes that are not UTF-8 (kept by Python as lone
        surrogates, which JSON encoders refuse) written as `\\xff` escapes."""
        return self.path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

    def side(self, side: Side) -> Entry:
        return self.before if side == "before" else self.after

    @property
    def kind(self) -> ChangeKind:
        if not self.before.exists:
            return "added"
        if not self.after.exists:
            return "deleted"
        if self.before.type != self.after.type:
            return "type"
        if self.before.model_copy(update={"mode": self.after.mode}) == self.after:
            return "mode"
        return "modified"


class RestoreArgs(BaseModel):
    """Arguments of the `fs.restore` compensation: enough to undo from any process."""

    workspace: str
    store: str
    changes: list[PathChange]


def effective(changes: list[PathChange]) -> list[PathChange]:
    """Drop paths whose before and after are equal (e.g. a directory copied up unchanged)."""
    return [c for c in changes if c.before != c.after]


def effect_summary(changes: list[PathChange]) -> dict[str, object]:
    """The step's `effect` under the shared contract: changes and bytes written."""
    written = sum(c.after.size or 0 for c in changes if c.after.type == "file" and c.kind != "mode")
    return {
        "changes": [{"path": c.shown, "change": c.kind} for c in changes],
        "bytes_written": written,
    }
