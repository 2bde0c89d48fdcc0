"""The programs a shell command line runs, as the shell will read it.

Command rules are matched against each simple command the line runs, found with a real
shell parser: mvdan/sh (the `shfmt` binary of PyPI's `shfmt-py`), the parser behind
`shfmt`. A line is read three times: as POSIX sh (what `sh` is under bwrap on Debian:
dash), as bash (what `sh` is elsewhere), and by the host's own `sh -n`, which parses
without running anything. The line is refused (`UnclearCommand`) unless all three accept it
and both parses name the same commands with the same words; so what the rules see is what
either shell will run. `echo $'x'`, `&>`, `[[`, `{a,b}` and `time` mean different things
to dash and bash, and are refused.

Every command is found wherever the shell would run it: after `;`, `&&`, `|`, newlines, in
`$(...)` and backticks (the backticks end where the shell ends them), in here-documents,
`${x:-$(...)}`, function bodies, loops and conditions; comments are comments. Each
`SimpleCommand` has its words with quotes and backslashes removed (an expansion keeps its
source text), so `"rm" -rf src` is `rm -rf src`.

This decides which programs run, not what they do: `sh -c`, `eval`, `xargs`, `find -exec`
and a program's own options can run others. Allow-list the commands you mean and refuse the
rest; the sandbox confines what an allowed command does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from goex_tools.errors import ActionRefused

TIMEOUT = 10.0  # seconds for one parse
WRAPPERS = frozenset({"command", "builtin", "exec", "env", "nice", "nohup", "stdbuf", "timeout"})
_OPTION_VALUE = re.compile(r"^(-\S*|[A-Za-z_][A-Za-z0-9_]*=.*|[0-9][0-9.]*[smhd]?)$")
_BRACE_EXPANSION = re.compile(r"\{[^{}\s]*(,|\.\.)[^{}\s]*\}")
_GLOB = frozenset("*?[")


class UnclearCommand(ActionRefused):
    """A command line that does not parse, or that dash and bash would read differently."""


@dataclass(frozen=True)
class SimpleCommand:
    """One command a line runs.

    - `text`: its assignments and words, quotes removed, joined by single spaces;
    - `program`: the same from the program on: without assignments and without wrappers
      such as `env`, `command` or `nice -n 5` (refuse and ask rules also match this);
    - `literal`: the program's name and the assignments before it are plain text (no
      expansion, glob or tilde), so `text` says what runs; only such commands can be
      allowed by a rule (`PATH=.:$PATH ls` cannot be allowed by `ls*`).
    """

    text: str
    program: str
    literal: bool


def simple_commands(line: str) -> tuple[SimpleCommand, ...]:
    """The simple commands `line` runs. Raises UnclearCommand if it is not clear which."""
    found = _parse(line)
    if isinstance(found, str):
        raise UnclearCommand(found)
    return found


@lru_cache(maxsize=256)
def _parse(line: str) -> tuple[SimpleCommand, ...] | str:
    if "\x00" in line:
        return "the command line holds a NUL byte"
    reads = {}
    for dialect in ("posix", "bash"):
        tree = _shfmt(line, dialect)
        if isinstance(tree, str):
            return tree
        source = line.encode()
        try:
            reads[dialect] = tuple(_commands(tree, source))
        except _Unclear as exc:
            return f"{exc} (read as {dialect})"
    if reads["posix"] != reads["bash"]:
        return "the command line reads differently as POSIX sh (dash) and as bash"
    problem = _sh_syntax(line)
    if problem:
        return problem
    return reads["posix"]


class _Unclear(Exception):
    pass


def _shfmt(line: str, dialect: str) -> dict[str, Any] | str:
    done = _quietly([shfmt_path(), "-ln", dialect, "--to-json"], line.encode())
    if isinstance(done, str):
        return f"the shell parser failed: {done}"
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().replace("<standard input>:", "")
        return f"the command line does not parse as {_NAMES[dialect]}: {message[:300]}"
    tree: dict[str, Any] = json.loads(done.stdout)
    return tree


_NAMES = {"posix": "POSIX sh (dash)", "bash": "bash"}


def _sh_syntax(line: str) -> str:
    """The host's `sh` parses the line without running it (`-n`): its own word on syntax."""
    done = _quietly(["/bin/sh", "-n", "-c", line], b"")
    if isinstance(done, str):
        return f"the shell's syntax check failed: {done}"
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        return f"/bin/sh does not accept the command line: {message[:300]}"
    return ""


def _quietly(argv: list[str], given: bytes) -> subprocess.CompletedProcess[bytes] | str:
    """Run a parser with `given` on stdin and a bare environment; why it failed, if it did."""
    try:
        return subprocess.run(
            argv,
            input=given,
            capture_output=True,
            timeout=TIMEOUT,
            env={"PATH": os.defpath},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)


@lru_cache(maxsize=1)
def shfmt_path() -> str:
    """The `shfmt` installed with goex-tools (PyPI `shfmt-py`), else one on PATH."""
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "shfmt"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("shfmt")
    if found is None:
        raise UnclearCommand(
            "shfmt (PyPI package shfmt-py) is not installed: no shell command can be parsed, "
            "so none is allowed"
        )
    return found


def _commands(node: Any, source: bytes) -> Iterator[SimpleCommand]:
    """Every simple command in the syntax tree, outer ones before their substitutions."""
    if isinstance(node, list):
        for item in node:
            yield from _commands(item, source)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("Type")
    if kind == "CallExpr" and node.get("Args"):
        yield _simple(node.get("Assigns") or [], node["Args"], source)
    elif kind == "DeclClause":  # bash's `export`, `local`, `declare`...: words as dash reads them
        yield _simple([], [{"Parts": [{"Type": "Lit", **node["Variant"]}]}, *node["Args"]], source)
    for key, value in node.items():
        if key != "Variant":
            yield from _commands(value, source)


def _simple(assigns: list[Any], args: list[Any], source: bytes) -> SimpleCommand:
    words = [_arg(arg, source) for arg in args]
    prefix = [_assign(a, source) for a in assigns]
    start = 0
    while start < len(words) - 1 and words[start][0] in WRAPPERS and words[start][1]:
        start += 1
        while start < len(words) - 1 and _OPTION_VALUE.match(words[start][0]):
            start += 1
    return SimpleCommand(
        text=" ".join(w for w, _ in [*prefix, *words]),
        program=" ".join(w for w, _ in words[start:]),
        literal=all(plain for _, plain in [*prefix, words[0]]),
    )


def _arg(arg: dict[str, Any], source: bytes) -> tuple[str, bool]:
    if "Parts" in arg or not arg:
        return _word(arg, source)
    return _assign(arg, source)  # an argument of a bash DeclClause


def _assign(assign: dict[str, Any], source: bytes) -> tuple[str, bool]:
    if assign.get("Array") or assign.get("Index"):
        raise _Unclear("array assignments are bash only")
    name = assign["Name"]["Value"] if assign.get("Name") else ""
    if assign.get("Value") is None:
        return name, True
    value, literal = _word(assign["Value"], source)
    if assign.get("Naked"):  # a bare word such as the `-p` of `export -p`
        return name + value, literal
    return f"{name}{'+=' if assign.get('Append') else '='}{value}", literal


def _word(word: dict[str, Any], source: bytes) -> tuple[str, bool]:
    """The word with quotes and backslashes removed, and whether it is plain text."""
    text, literal = [], True
    for i, part in enumerate(word.get("Parts") or []):
        kind = part.get("Type")
        if kind == "Lit":
            raw = part["Value"]
            if _BRACE_EXPANSION.search(raw):
                raise _Unclear(f"{raw!r} is a brace expansion to bash, a plain word to dash")
            literal &= not (_GLOB & set(raw)) and not (i == 0 and raw.startswith("~"))
            text.append(_unescape(raw, quoted=False))
        elif kind == "SglQuoted" and not part.get("Dollar"):
            text.append(part["Value"])
        elif kind == "DblQuoted" and not part.get("Dollar"):
            for inner in part.get("Parts") or []:
                if inner.get("Type") == "Lit":
                    text.append(_unescape(inner["Value"], quoted=True))
                else:
                    text.append(_source(inner, source))
                    literal = False
        else:
            text.append(_source(part, source))
            literal = False
    return "".join(text), literal


def _unescape(raw: str, *, quoted: bool) -> str:
    """Backslash removal: any character outside quotes; `$`, `` ` ``, `"`, `\\` inside."""
    out, i = [], 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            following = raw[i + 1]
            if following == "\n":
                i += 2
                continue
            if not quoted or following in '$`"\\':
                out.append(following)
                i += 2
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _source(node: dict[str, Any], source: bytes) -> str:
    """A node's text as written (the parser's offsets count bytes)."""
    return source[node["Pos"]["Offset"] : node["End"]["Offset"]].decode(errors="replace")
