"""What a batch did to the database, row by row: the records confirm callbacks and budgets see.

A `RowChange` is one captured row event with its before and after images (column -> value);
`ChangeSummary` groups them per table, with counts and a size-limited sample of images.
A transaction hands its events over as `Captured`: counted all, but only the sample is turned
into `RowChange`s (a batch of 100,000 rows costs counts, not 100,000 models).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from goex_tools.domains.sql.statements import Statement
from goex_tools.model import JSONDict

Operation = Literal["insert", "update", "delete"]
Image = dict[str, Any]
SAMPLE_ROWS = 20  # rows per table shown to a confirm callback
VALUE_LIMIT = 200  # characters of one value shown


class RowChange(BaseModel):
    """One row a batch changed: its image before and after (None where it did not exist)."""

    table: str
    op: Operation
    before: Image | None = None
    after: Image | None = None


class TableChanges(BaseModel):
    """Rows a batch inserted, updated and deleted in one table, with a sample of them (`rows`;
    `truncated` when the sample leaves rows out)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rows: list[RowChange] = Field(default_factory=list)  # a sample, see `truncated`
    truncated: bool = False


class ChangeSummary(BaseModel):
    """Shown to a `confirm` callback before the transaction commits."""

    database: str
    statements: list[Statement]
    reversible_by: str | None
    rows_changed: int = 0
    tables: dict[str, TableChanges] = Field(default_factory=dict)

    def effect(self) -> JSONDict:
        """The step's effect in the contract's shape."""
        return {
            "rows_changed": self.rows_changed,
            "tables": {
                name: {"inserted": t.inserted, "updated": t.updated, "deleted": t.deleted}
                for name, t in self.tables.items()
            },
        }


ConfirmAnswer = Literal["commit", "rollback"]
"""What a `run_sql` confirm callback may answer besides True/False."""
Decision = ConfirmAnswer  # the former name; `goex_tools.Decision` is the policy decision
E = TypeVar("E")
T = TypeVar("T")


@dataclass(frozen=True)
class Captured(Generic[E]):
    """A transaction's row events in order, as (table, operation, raw event), and `show`,
    which makes the `RowChange` of one (called only for the sample a summary keeps).

    With `counts` (events per table and operation), `events` may hold only the first
    SAMPLE_ROWS events of each table: a large batch need not hand over one tuple per row.
    """

    events: Sequence[tuple[str, Operation, E]]
    show: Callable[[tuple[str, Operation, E]], RowChange]
    counts: Mapping[tuple[str, Operation], int] | None = None


def _no_event(event: tuple[str, Operation, None]) -> RowChange:
    raise AssertionError("nothing was captured, so there is nothing to show")


NOTHING: Captured[None] = Captured(events=(), show=_no_event)  # no capture (reads, MySQL)


def summarize(
    database: str,
    statements: list[Statement],
    reversible_by: str | None,
    changes: Captured[Any],
    sample: int = SAMPLE_ROWS,
) -> ChangeSummary:
    counts = changes.counts
    if counts is None:
        counts = Counter((table, op) for table, op, _ in changes.events)
    samples: dict[str, list[tuple[str, Operation, Any]]] = {}  # in order of first change
    for event in changes.events:
        kept = samples.setdefault(event[0], [])
        if len(kept) < sample:
            kept.append(event)
    tables = {}
    for name, kept in samples.items():
        table = TableChanges(
            inserted=counts.get((name, "insert"), 0),
            updated=counts.get((name, "update"), 0),
            deleted=counts.get((name, "delete"), 0),
            rows=[_shown(changes.show(event)) for event in kept],
        )
        table.truncated = table.inserted + table.updated + table.deleted > len(kept)
        tables[name] = table
    return ChangeSummary(
        database=database,
        statements=statements,
        reversible_by=reversible_by,
        rows_changed=sum(counts.values()),
        tables=tables,
    )


def _shown(change: RowChange) -> RowChange:
    return RowChange(
        table=change.table, op=change.op, before=shown(change.before), after=shown(change.after)
    )


def shown(image: Image | None) -> Image | None:
    """An image fit for display and JSON: bytes as base64, long values cut."""
    if image is None:
        return None
    return {column: shown_value(value) for column, value in image.items()}


def shown_value(value: Any) -> Any:
    if isinstance(value, bytes):
        value = "base64:" + base64.b64encode(value).decode()
    if isinstance(value, str) and len(value) > VALUE_LIMIT:
        return value[: VALUE_LIMIT - 3] + "..."
    return value


def until_conflict(chain: Iterable[T], undo: Callable[[T], list[str]]) -> list[list[str]]:
    """The conflicts of each undo of `chain` (newest first), tried in turn inside one
    transaction the caller rolls back, up to the first that conflicts: undos past it would
    meet rows it left half-undone (they get no list). Shared by the dialects' `preview`."""
    found: list[list[str]] = []
    for args in chain:
        found.append(undo(args))
        if found[-1]:
            break
    return found


def conflict_report(conflicts: list[str], limit: int = 10) -> str:
    """One message for a refused undo: how many rows others changed, and the first few."""
    more = f" (and {len(conflicts) - limit} more)" if len(conflicts) > limit else ""
    head = "; ".join(conflicts[:limit])
    return f"{len(conflicts)} row(s) changed by someone else since the step: {head}{more}"


def unforceable_report(rows: list[str], limit: int = 3) -> str:
    """Why a forced undo stops at rows of a table without a primary key."""
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    return (
        f"{'; '.join(rows[:limit])}{more}: the table has no primary key, so nothing tells "
        f"which row is the step's now, and force cannot write its before-image over a row "
        f"nobody may have meant; nothing was undone"
    )
