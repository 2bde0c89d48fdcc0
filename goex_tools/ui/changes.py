"""What a step changed, as data a page can lay out (no web framework here).

Each domain tells it through its public API: `domains.fs.diff` for files (a unified diff
for text, sizes and hashes for binary content), the rows a SQL step's result kept (each
before and after, per table; a table no statement names was written by a cascade or a
trigger), the resource states an HTTP step's undo was journaled with (before and after, as
a JSON diff). Everything shown passes through `redact`: secrets appear as [REDACTED].
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from goex_tools.errors import GoexError
from goex_tools.journal import Journal
from goex_tools.model import JSONDict, Reversibility, Step
from goex_tools.redaction import redact

__all__ = [
    "Cell",
    "FileChange",
    "ResourceChange",
    "RowChange",
    "SideBySide",
    "StepChanges",
    "TableChange",
    "changes_of",
    "side_by_side",
]


class SideBySide(BaseModel):
    """One line of a side-by-side diff: the old line and the new (None: no line there)."""

    kind: Literal["same", "changed", "removed", "added", "hunk"]
    old: str | None = None
    new: str | None = None
    old_no: int | None = None
    new_no: int | None = None


class FileChange(BaseModel):
    path: str
    change: str  # added, deleted, modified, mode, type
    summary: str  # what each side is: type, mode, size, hash
    unified: str | None = None  # None: binary, too large, or not a file
    lines: list[SideBySide] = Field(default_factory=list)
    before_sha256: str | None = None
    after_sha256: str | None = None
    before_size: int | None = None
    after_size: int | None = None

    @property
    def binary(self) -> bool:
        return self.unified is None and "file" in self.summary


class Cell(BaseModel):
    before: str = ""
    after: str = ""
    changed: bool = False


class RowChange(BaseModel):
    op: str  # insert, update, delete
    cells: list[Cell]


class TableChange(BaseModel):
    table: str
    counts: str  # "1 updated, 2 deleted"
    columns: list[str] = Field(default_factory=list)
    rows: list[RowChange] = Field(default_factory=list)
    truncated: bool = False  # more rows changed than the step's result kept
    indirect: bool = False  # no statement names it: a cascade or a trigger wrote it


class ResourceChange(BaseModel):
    method: str
    url: str
    status_code: int | None = None
    before: str | None = None  # the resource as JSON, "(absent)", or None: not read
    after: str | None = None
    unified: str = ""
    lines: list[SideBySide] = Field(default_factory=list)


class StepChanges(BaseModel):
    """What one step changed; `note` says why something could not be shown."""

    files: list[FileChange] = Field(default_factory=list)
    tables: list[TableChange] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    resource: ResourceChange | None = None
    note: str = ""

    @property
    def empty(self) -> bool:
        return not (self.files or self.tables or self.resource or self.statements or self.note)


def changes_of(step: Step, journal: Journal) -> StepChanges:
    """What `step` changed (or, compensated since, had changed; held: would change)."""
    if step.reversibility is Reversibility.CONTAINER:
        return StepChanges()
    if step.domain == "fs" and step.compensation is not None:
        found = _files(step, journal)
    elif step.domain == "sql":
        found = _sql(step)
    elif step.domain == "http":
        found = _http(step)
    else:
        found = StepChanges()
    shown: StepChanges = StepChanges.model_validate(redact(found.model_dump()))
    return shown


def _files(step: Step, journal: Journal) -> StepChanges:
    from goex_tools.domains.fs import diff

    try:
        files = diff(step.id, journal=journal).files
    except (GoexError, OSError, ValueError) as exc:
        return StepChanges(note=f"the changes cannot be read: {exc}")
    return StepChanges(
        files=[
            FileChange(
                path=f.path,
                change=f.change,
                summary=f.summary,
                unified=f.diff,
                lines=side_by_side(f.diff or ""),
                before_sha256=f.before.sha256,
                after_sha256=f.after.sha256,
                before_size=f.before.size,
                after_size=f.after.size,
            )
            for f in files
        ]
    )


def _sql(step: Step) -> StepChanges:
    output = step.output if isinstance(step.output, dict) else {}
    captured = output.get("changes") or {}
    statements = captured.get("statements") or step.effect.get("predicted", {}).get(
        "statements", []
    )
    named = {_bare(t) for s in statements if isinstance(s, dict) for t in s.get("tables") or []}
    counts = step.effect.get("tables") or {}
    rows_of = captured.get("tables") or {}
    tables = []
    for table in dict.fromkeys([*counts, *rows_of]):
        kept = rows_of.get(table) or {}
        tally = counts.get(table) or kept
        rows = [r for r in kept.get("rows") or [] if isinstance(r, dict)]
        columns = list(
            dict.fromkeys(
                k for r in rows for side in ("before", "after") for k in r.get(side) or {}
            )
        )
        tables.append(
            TableChange(
                table=table,
                counts=", ".join(
                    f"{tally[what]} {what}"
                    for what in ("inserted", "updated", "deleted")
                    if tally.get(what)
                ),
                columns=columns,
                rows=[_row(r, columns) for r in rows],
                truncated=bool(kept.get("truncated")) or (not kept and bool(counts.get(table))),
                indirect=bool(named) and _bare(table) not in named,
            )
        )
    texts = [str(s.get("sql", "")) for s in statements if isinstance(s, dict)]
    return StepChanges(tables=tables, statements=texts)


def _row(row: JSONDict, columns: list[str]) -> RowChange:
    before, after = row.get("before") or {}, row.get("after") or {}
    cells = []
    for column in columns:
        old = _cell(before[column]) if column in before else ""
        new = _cell(after[column]) if column in after else ""
        changed = row.get("before") is None or row.get("after") is None or old != new
        cells.append(Cell(before=old, after=new, changed=changed))
    return RowChange(op=str(row.get("op", "")), cells=cells)


def _cell(value: Any) -> str:
    return "NULL" if value is None else value if isinstance(value, str) else json.dumps(value)


def _bare(table: str) -> str:
    """A table's name without schema or quotes, lower-cased, to compare names."""
    return table.split(".")[-1].strip('"`[]').lower()


def _http(step: Step) -> StepChanges:
    from goex_tools.domains.http import KIND, RevertArgs

    predicted = step.effect.get("predicted") or {}
    resource = ResourceChange(
        method=str(predicted.get("method") or step.inputs.get("method") or ""),
        url=str(predicted.get("url") or step.inputs.get("url") or ""),
        status_code=step.effect.get("status_code"),
    )
    undo = step.compensation
    if undo is not None and undo.kind == KIND and not undo.unavailable:
        try:
            args = RevertArgs.model_validate(undo.args)
        except ValueError:
            args = None
        if args is not None:
            resource.before = _state(args.before)
            resource.after = _state(args.after)
    if resource.before is not None and resource.after is not None:
        resource.unified = "".join(
            difflib.unified_diff(
                resource.before.splitlines(keepends=True),
                resource.after.splitlines(keepends=True),
                fromfile="before",
                tofile="after",
            )
        )
        resource.lines = side_by_side(resource.unified)
    return StepChanges(resource=resource)


def _state(state: Any) -> str | None:
    if state is None:
        return None
    if not state.exists:
        return "(absent)\n"
    return json.dumps(state.body, indent=2, sort_keys=True, default=str) + "\n"


def side_by_side(unified: str) -> list[SideBySide]:
    """A unified diff laid out in two columns: removed lines beside the lines added in
    their place, unchanged lines on both sides, a row per hunk header."""
    rows: list[SideBySide] = []
    removed: list[str] = []
    added: list[str] = []
    old_no = new_no = 0

    def flush() -> None:
        nonlocal old_no, new_no
        for i in range(max(len(removed), len(added))):
            old = removed[i] if i < len(removed) else None
            new = added[i] if i < len(added) else None
            kind: Literal["changed", "removed", "added"] = (
                "changed" if old is not None and new is not None
                else "removed" if old is not None else "added"
            )  # fmt: skip
            rows.append(
                SideBySide(
                    kind=kind,
                    old=old,
                    new=new,
                    old_no=old_no + 1 if old is not None else None,
                    new_no=new_no + 1 if new is not None else None,
                )
            )
            old_no += old is not None
            new_no += new is not None
        removed.clear()
        added.clear()

    for line in unified.splitlines():
        if line.startswith(("--- ", "+++ ")) and not rows and not removed and not added:
            continue
        if line.startswith("@@"):
            flush()
            old_no, new_no = _hunk_start(line)
            rows.append(SideBySide(kind="hunk", old=line, new=line))
        elif line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
        elif line.startswith("\\"):
            continue  # "\ No newline at end of file"
        else:
            flush()
            text = line[1:] if line.startswith(" ") else line
            old_no, new_no = old_no + 1, new_no + 1
            rows.append(SideBySide(kind="same", old=text, new=text, old_no=old_no, new_no=new_no))
    flush()
    return rows


def _hunk_start(header: str) -> tuple[int, int]:
    """The line before each side's first line in a hunk (`@@ -a,b +c,d @@`)."""
    try:
        old, new = header.split("@@")[1].split()
        return int(old[1:].split(",")[0]) - 1, int(new[1:].split(",")[0]) - 1
    except (IndexError, ValueError):
        return 0, 0
