"""Reading a policy file (YAML or TOML) with errors that name the file and line at fault.

Validation errors come from pydantic with a location path (`fs.rules.1.decision`); the
path is mapped back to the line that holds it, through the YAML node marks or a scan of the
TOML text, so that a person can go straight to the bad line. Nothing is returned (so nothing
runs) unless the whole file is valid.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from goex_tools.errors import GoexError
from goex_tools.policy.config import PolicyConfig

Loc = tuple[str | int, ...]


class PolicyError(GoexError):
    """A policy file that cannot be read or does not validate; `problems` are `file:line: msg`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid policy:\n  " + "\n  ".join(problems))
        self.problems = list(problems)


class PolicySource:
    """A validated policy and where each of its parts came from."""

    def __init__(self, config: PolicyConfig, name: str, lines: dict[Loc, int]) -> None:
        self.config = config
        self.name = name
        self._lines = lines

    def where(self, *loc: str | int) -> str:
        """`file:line` of the nearest known location at or above `loc`."""
        return f"{self.name}:{_line_of(self._lines, loc)}"


def load_policy(path: str | Path) -> PolicySource:
    """Read and validate a policy file; `.toml` is TOML, anything else YAML.

    Raises:
        PolicyError: the file cannot be read, parsed or validated (each problem with its line).
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise PolicyError([f"{file}: cannot read: {exc.strerror}"]) from None
    kind = "toml" if file.suffix == ".toml" else "yaml"
    return parse_policy(text, name=str(file), kind=kind)


def parse_policy(text: str, *, name: str = "<policy>", kind: str = "yaml") -> PolicySource:
    """Validate a policy given as text.

    - `text`: the policy, YAML or TOML;
    - `name`: what problems are reported against (`name:line`), such as the file's path;
    - `kind`: `"yaml"` or `"toml"`.

    Raises:
        PolicyError: the text cannot be parsed or does not validate (each problem with its line).
    """
    data, lines = _parse_toml(text, name) if kind == "toml" else _parse_yaml(text, name)
    try:
        config = PolicyConfig.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(
            [
                f"{name}:{_line_of(lines, tuple(err['loc']))}: "
                f"{_dotted(tuple(err['loc']))}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None
    return PolicySource(config, name, lines)


def _parse_yaml(text: str, name: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PolicyError([f"{name}:{line}: not valid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([f"{name}: not valid YAML: {exc}"]) from None
    lines: dict[Loc, int] = {(): 1}
    duplicates: list[str] = []
    if node is not None:
        _yaml_lines(node, (), lines, duplicates)
    if duplicates:  # YAML would silently keep the last one: a policy must not change quietly
        raise PolicyError([f"{name}:{d}" for d in duplicates])
    return ({} if data is None else data), lines


def _yaml_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[str]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            child = (*loc, str(key.value))
            line = key.start_mark.line + 1
            if child[-1] in first:
                where = f"duplicate key (first on line {first[str(child[-1])]})"
                duplicates.append(f"{line}: {_dotted(child)}: {where}")
            first.setdefault(str(child[-1]), line)
            _yaml_lines(value, child, lines, duplicates)
            lines[child] = line  # the key's line reads best
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _yaml_lines(item, (*loc, index), lines, duplicates)


_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _parse_toml(text: str, name: str) -> tuple[Any, dict[Loc, int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = found.group(1) if found else "1"
        raise PolicyError([f"{name}:{line}: not valid TOML: {exc}"]) from None
    return data, _toml_lines(text)


def _toml_lines(text: str) -> dict[Loc, int]:
    """Lines of tables, array-of-tables entries and keys (inline values map to their key)."""
    lines: dict[Loc, int] = {(): 1}
    counts: dict[Loc, int] = {}
    table: Loc = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(raw)
        if header:
            path: Loc = tuple(_toml_key(p) for p in header.group(2).split("."))
            if header.group(1) == "[[":
                index = counts.get(path, 0)
                counts[path] = index + 1
                path = (*path, index)
            table = path
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            parts = tuple(_toml_key(p) for p in key.group(1).split("."))
            lines.setdefault((*table, *parts), number)
    return lines


def _toml_key(part: str) -> str:
    return part.strip().strip("\"'")


def _line_of(lines: dict[Loc, int], loc: Loc) -> int:
    for end in range(len(loc), -1, -1):
        key = tuple(str(p) if isinstance(p, str) else p for p in loc[:end])
        if key in lines:
            return lines[key]
    return 1


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"
