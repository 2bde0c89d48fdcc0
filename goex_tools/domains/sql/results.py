"""What a statement returned, limited in size for the model and the journal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field


class StatementResult(BaseModel):
    """Rows a statement returned (the first `limit`), or how many rows it affected."""

    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    row_count: int | None = None  # rows returned, or rows affected by a write
    truncated: bool = False


def collect(rows: Iterable[Iterable[Any]], columns: list[str], limit: int) -> StatementResult:
    """Run `rows` to its end (the statement must finish) and keep the first `limit` rows."""
    kept: list[list[Any]] = []
    count = 0
    for row in rows:
        count += 1
        if len(kept) < limit:
            kept.append(list(row))
    return StatementResult(
        columns=list(columns),
        rows=kept,
        row_count=count if columns else None,
        truncated=count > limit,
    )
