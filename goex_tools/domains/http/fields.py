"""Fields of a resource the undo treats apart: server-managed ones and write-only ones.

A field is named by a dotted path from the body's root (`data.last_modified`); a segment
`*` stands for any one key or list index, `**` for any depth. Kinds:
- server-managed (read-only): the service sets them on every write (`ETag`-like versions,
  timestamps). Their value is neither compared nor written back; their presence is compared.
  Known from the API document (`readOnly`), a rule's `ignore_fields`, and common names
  (SERVER_MANAGED) unless the call itself set the field and the service kept the value;
- write-only: the service takes them but never gives them back as sent (a password, whose
  read is a hash). A call writing one cannot be undone from a read; their read values are
  never journaled. Known from the document (`writeOnly`), a rule's `write_only`, and
  common names (WRITE_ONLY).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

SERVER_MANAGED = (
    "**.created",
    "**.created_at",
    "**.createdAt",
    "**.etag",
    "**._etag",
    "**.last_modified",
    "**.lastModified",
    "**.updated_at",
    "**.updatedAt",
    "**.modified_at",
    "**.modifiedAt",
    "**.version",
)
WRITE_ONLY = ("**.password", "**.passwd", "**.new_password", "**.newPassword")
PRESENT = "<server-managed>"  # what an ignored value is compared as

Path = tuple[str, ...]


def split(pattern: str) -> Path:
    return tuple(pattern.split(".")) if pattern else ()


def matches(pattern: str, path: Path) -> bool:
    """True if the concrete `path` (keys and list indexes as strings) fits `pattern`."""
    return _match(split(pattern), path)


def _match(pattern: Path, path: Path) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and head in ("*", path[0]) and _match(rest, path[1:])


def leaves(data: Any, prefix: Path = ()) -> Iterator[Path]:
    """The paths of every value in `data` (objects and lists are walked into)."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from leaves(value, (*prefix, str(key)))
    elif isinstance(data, list) and data:
        for index, value in enumerate(data):
            yield from leaves(value, (*prefix, str(index)))
    else:
        yield prefix


def get(data: Any, path: Path) -> Any:
    """The value at `path`, or KeyError."""
    for key in path:
        if isinstance(data, dict):
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            raise KeyError(".".join(path))
    return data


def rewrite(
    data: Any, patterns: list[str], drop: bool, keep: list[str] | None = None, prefix: Path = ()
) -> Any:
    """`data` with the values at paths matching `patterns` (but not the paths in `keep`)
    dropped (`drop`) or replaced by PRESENT (kept as a presence, for comparing)."""
    if not patterns:
        return data
    if isinstance(data, dict):
        result = {}
        for key, value in data.items():
            path = (*prefix, str(key))
            if any(matches(p, path) for p in patterns) and ".".join(path) not in (keep or ()):
                if not drop:
                    result[key] = PRESENT
                continue
            result[key] = rewrite(value, patterns, drop, keep, path)
        return result
    if isinstance(data, list):
        return [rewrite(v, patterns, drop, keep, (*prefix, str(i))) for i, v in enumerate(data)]
    return data


def found(data: Any, patterns: list[str] | tuple[str, ...]) -> list[str]:
    """The dotted paths in `data` (keys, at any depth) that match `patterns`."""
    hits: list[str] = []

    def walk(node: Any, prefix: Path) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                path = (*prefix, str(key))
                if any(matches(p, path) for p in patterns):
                    hits.append(".".join(path))
                else:
                    walk(value, path)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*prefix, str(index)))

    walk(data, ())
    return hits


def kept_by_service(sent: Any, after: Any, patterns: tuple[str, ...]) -> list[str]:
    """Paths matching `patterns` (common names) that the call set and the service kept as
    sent: they are the caller's data, not the service's, and are compared and restored."""
    kept = []
    for path in found(sent, patterns):
        try:
            if get(after, split(path)) == get(sent, split(path)):
                kept.append(path)
        except KeyError:
            continue
    return kept


def project(data: Any, spec: dict[str, str]) -> Any:
    """The fields `spec` names, each read from `data` at its path (`*` maps over a list:
    `labels.*.name` is the list of the labels' names); an absent one is None. Without a
    spec, `data` itself."""
    if not spec:
        return data
    return {name: _pick(data, split(path)) for name, path in spec.items()}


def _pick(data: Any, path: Path) -> Any:
    for i, key in enumerate(path):
        if key == "*":
            items = data if isinstance(data, list) else []
            return [_pick(item, path[i + 1 :]) for item in items]
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data
