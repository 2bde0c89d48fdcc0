"""Removing secret values from anything goex-tools writes or returns.

The secret store registers every value it hands out; the journal, tool outputs and error
messages pass through `redact` so that no secret value is ever stored or shown.
"""

from __future__ import annotations

import threading
from typing import Any

MASK = "[REDACTED]"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary text everywhere


class Redactor:
    """Replaces known secret values in strings and in nested JSON-like data."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) >= _MIN_SECRET_LENGTH:
            with self._lock:
                self._values.add(value)

    def redact(self, data: Any) -> Any:
        if not self._values:
            return data
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        return _walk(data, values)

    def redact_text(self, text: str) -> str:
        result: str = self.redact(text)
        return result


def _walk(data: Any, values: list[str]) -> Any:
    if isinstance(data, str):
        for value in values:
            if value in data:
                data = data.replace(value, MASK)
        return data
    if isinstance(data, dict):
        return {_walk(k, values): _walk(v, values) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_walk(item, values) for item in data]
    return data


redactor = Redactor()
"""The process-wide redactor: the secret store adds to it; the journal reads through it."""


def redact(data: Any) -> Any:
    return redactor.redact(data)
