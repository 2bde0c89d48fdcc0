"""Text goex builds itself: quoted identifiers and literals, JSON arrays joined, and texts
packed for the journal (zlib at the fastest level, then base64: the journal's bytes cost
more than compressing them)."""

from __future__ import annotations

import base64
import zlib
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


def pack(text: str | None) -> str | None:
    """`text` compressed for the journal."""
    return None if text is None else base64.b64encode(zlib.compress(text.encode(), 1)).decode()


def unpack(packed: str | None) -> str | None:
    return None if packed is None else zlib.decompress(base64.b64decode(packed)).decode()
