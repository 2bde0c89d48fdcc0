"""SQL text goex builds itself: quoted identifiers and literals, JSON arrays joined."""

from __future__ import annotations

from collections.abc import Sequence


def ident(name: str) -> str:
    """A quoted SQL identifier (PostgreSQL and SQLite)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def concat(arrays: Sequence[str | None]) -> str:
    """One JSON array of the elements of several (None: no array)."""
    inner = [a.strip()[1:-1] for a in arrays if a is not None]
    return "[" + ", ".join(i for i in inner if i.strip()) + "]"
