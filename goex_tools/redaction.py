"""Removing secret values from anything goex-tools writes or returns.

The secret store registers every value it hands out; the journal, tool outputs and error
messages pass through `redact` so that no secret value is ever stored or shown, in any of
the forms `secret_forms` knows (escaped, encoded, derived, or in pieces).
"""

from __future__ import annotations

import threading
from typing import Any

from goex_tools.secret_forms import Masker

__all__ = [
    "MASK",
    "UNDO_HELD_A_SECRET",
    "Redactor",
    "holds_secret",
    "redact",
    "redactor",
]

MASK = "[REDACTED]"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary text everywhere


class Redactor:
    """Replaces known secret values in strings and in nested JSON-like data."""

    def __init__(self) -> None:
        self._masker = Masker(_MIN_SECRET_LENGTH)
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Mask `value` exactly as written."""
        with self._lock:
            self._masker.add_literal(value)

    def add_secret(self, value: str) -> set[str]:
        """Mask `value` in every form it can take (`secret_forms`), and the values it stands
        for (a Basic credential's password); returns its whole-value forms."""
        with self._lock:
            return self._masker.add_value(value)

    def redact(self, data: Any) -> Any:
        return _walk(data, self._masker)

    def redact_text(self, text: str) -> str:
        result: str = self.redact(text)
        return result


def _walk(data: Any, masker: Masker) -> Any:
    if isinstance(data, str):
        return masker.mask(data, MASK)
    if isinstance(data, dict):
        return {_walk(k, masker): _walk(v, masker) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_walk(item, masker) for item in data]
    return data


redactor = Redactor()
"""The process-wide redactor: the secret store adds to it; the journal reads through it."""


def redact(data: Any) -> Any:
    """`data` (text, bytes, or JSON-like containers) with every registered secret value masked."""
    return redactor.redact(data)


UNDO_HELD_A_SECRET = "its undo data held a secret value, which goex never journals"


def holds_secret(data: str | bytes) -> bool:
    """Whether masking would change `data` (bytes are read as UTF-8, undecodable bytes
    replaced): for data a domain encodes (compresses) before the journal could mask it."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return redactor.redact_text(text) != text
