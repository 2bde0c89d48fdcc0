"""Splitting a shell command line into the simple commands a policy rule is matched against.

A rule such as `echo *` must not allow `echo hi; rm -rf src`, and `rm -rf*` must still refuse
`cd . && rm -rf src`. So the line is cut at every control operator (`;`, `&`, `&&`, `|`,
`||`, newlines, parentheses), the commands inside `$(...)` and backticks are added as commands
of their own (quoted or not: a double-quoted substitution runs too), and leading shell
keywords (`if`, `then`, `do`, `!`, `{`...) and variable assignments are dropped, so each part
starts with the program it runs. `#` is not taken as a comment, since `ls#; rm x` runs `rm`.

This is a guard against chaining, not a shell parser: `sh -c '...'`, `eval`, `xargs` and
aliases still hide what they run. Allow-list the commands you mean and refuse the rest; the
sandbox, not these rules, is what confines a command.
"""

from __future__ import annotations

import re
import shlex

OPERATORS = frozenset(";&|()\n")
KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time"}
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")


def simple_commands(line: str) -> list[str]:
    """The simple commands `line` runs, each as its words joined by single spaces."""
    parts: list[str] = []
    for inner in _substitutions(line):
        parts.extend(simple_commands(inner))
    try:
        tokens = _tokens(line)
    except ValueError:  # unbalanced quotes: the shell will not run it either; match it whole
        return list(dict.fromkeys([*parts, line.strip()]))
    words: list[str] = []
    for token in _join_redirections([*tokens, ";"]):
        if token and set(token) <= OPERATORS:
            command = _strip_prefix(words)
            if command:
                parts.append(" ".join(command))
            words = []
        else:
            words.append(token)
    return list(dict.fromkeys(parts)) or [line.strip()]


def _join_redirections(tokens: list[str]) -> list[str]:
    """`2>&1`, `>&2` and `&>file` are redirections, not a command sent to the background."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "&" and out and out[-1].endswith((">", "<")) and following:
            out[-1] += "&" + following
            i += 2
            continue
        if token == "&" and following.startswith(">"):
            out.append("&" + following)
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _substitutions(line: str) -> list[str]:
    """The text of every `$(...)` and backtick substitution, innermost ones included."""
    found: list[str] = []
    text = line
    while True:
        matches = list(_SUBSTITUTION.finditer(text))
        if not matches:
            return found
        found.extend(m.group(1) if m.group(1) is not None else m.group(2) for m in matches)
        text = _SUBSTITUTION.sub(" ", text)


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()\n")
    lexer.whitespace = " \t\r"
    lexer.commenters = ""
    lexer.whitespace_split = True
    return list(lexer)


def _strip_prefix(words: list[str]) -> list[str]:
    start = 0
    while start < len(words) and (words[start] in KEYWORDS or _ASSIGNMENT.match(words[start])):
        start += 1
    return words[start:]
