"""Matching a proposal against the per-domain rules.

A proposal is split into subjects: one per path it names and, for a directory of the
workspace, per path under it; one per simple command of its command line; one per statement
and table; the request as it will be sent. Every subject gets the strictest verdict of the
rules that match it, or the default, and the proposal gets the strictest verdict over its
subjects. So an action that names an allowed and a refused path is refused, and a rule can
never be bypassed by naming more things at once, or a directory that holds them.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from goex_tools.model import Proposal
from goex_tools.policy.commands import UnclearCommand, simple_commands
from goex_tools.policy.config import (
    STRICTNESS,
    FsRule,
    HttpRule,
    PolicyConfig,
    Rule,
    SqlRule,
    Verdict,
)
from goex_tools.policy.urls import AmbiguousPath, addresses, canonical_host, ip_address, normal_path


@dataclass(frozen=True)
class Verdicted:
    """A verdict and the rule that gave it (`rule` is a location such as `fs.rules[2]`)."""

    verdict: Verdict
    rule: str
    reason: str
    loc: tuple[str | int, ...] = ()


def strictest_of(items: Iterable[Verdicted]) -> Verdicted | None:
    """The strictest; the first of equals, so the earliest rule is the one reported."""
    best: Verdicted | None = None
    for item in items:
        if best is None or STRICTNESS[item.verdict] > STRICTNESS[best.verdict]:
            best = item
    return best


def evaluate_rules(config: PolicyConfig, proposal: Proposal) -> Verdicted:
    """The rules' verdict on a proposal (before irreversibility, approval and budgets)."""
    p = proposal.predicted
    default: Verdict | None
    rules: Sequence[Rule]
    subjects: list[dict[str, Any]]
    if proposal.domain == "fs":
        default, rules = config.fs.default, config.fs.rules
        subjects = fs_subjects(proposal)
    elif proposal.domain == "sql":
        default, rules = config.sql.default, config.sql.rules
        subjects = sql_subjects(proposal.tool, p)
    elif proposal.domain == "http":
        default, rules = config.http.default, config.http.rules
        subjects = [http_subject(proposal.tool, p)]
    else:
        return Verdicted(config.default, "default", f"no rules for domain {proposal.domain!r}")
    fallback = (
        Verdicted(
            default,
            f"{proposal.domain}.default",
            "no rule matched",
            (proposal.domain, "default"),
        )
        if default is not None
        else Verdicted(config.default, "default", "no rule matched", ("default",))
    )
    verdicts = [
        Verdicted("refuse", *subject["unclear"]) for subject in subjects if "unclear" in subject
    ]
    for subject in subjects:
        matched = [
            Verdicted(
                rule.decision,
                rule.name or f"{proposal.domain}.rules[{i}]",
                rule.reason or _describe(subject),
                (proposal.domain, "rules", i),
            )
            for i, rule in enumerate(rules)
            if _tools_match(rule, subject) and _matches(rule, subject)
        ]
        unmatched = replace(fallback, reason=f"no rule matched {_describe(subject)}")
        verdicts.append(strictest_of(matched) or unmatched)
    return strictest_of(verdicts) or fallback


def fs_subjects(proposal: Proposal) -> list[dict[str, Any]]:
    tool, predicted = proposal.tool, proposal.predicted
    named = [normalize(path) for path in predicted.get("paths") or []]
    workspace = predicted.get("workspace")
    inside = [p for p in named if workspace and not outside_workspace(p)]
    reached = tree(str(workspace), inside)
    subjects: list[dict[str, Any]] = [
        {"tool": tool, "path": path}
        for path in dict.fromkeys([*named, *reached, *moved_to(proposal, reached)])
    ]
    if predicted.get("command") is not None:
        try:
            commands = simple_commands(str(predicted["command"]))
        except UnclearCommand as unclear:
            return [{"tool": tool, "unclear": ("fs.commands", str(unclear))}]
        subjects.extend(
            {"tool": tool, "command": c.text, "program": c.program, "literal": c.literal}
            for c in commands
        )
    return subjects or [{"tool": tool}]


def sql_subjects(tool: str, predicted: dict[str, Any]) -> list[dict[str, Any]]:
    """One subject per statement and table it names (and, for a view, each table under it,
    `predicted["view_tables"]`); one per table a dry run found the
    batch changing (`predicted["changed_tables"]`, trigger writes and cascades included; None:
    it could not be told); and, for a batch calling functions of unknown effects, one that
    stands for anything at all."""
    database = str(predicted.get("database") or "")
    under = predicted.get("view_tables") or {}
    subjects = []
    for statement in predicted.get("statements") or []:
        tables = statement.get("tables") or [None]
        for table in tables:
            bare = (table or "").rpartition(".")[2].strip('"').lower()
            for reached in [table, *under.get(bare, [])]:
                subjects.append(
                    {
                        "tool": tool,
                        "database": database,
                        "kind": statement.get("kind"),
                        "table": reached,
                    }
                )
    if "changed_tables" in predicted:
        changed = predicted["changed_tables"]
        why = predicted.get("changed_tables_unknown") or "cannot be told"
        if changed is None:
            changed = [None]
        subjects.extend(
            {"tool": tool, "database": database, "kind": "write", "table": table}
            | ({"changes": why} if table is None else {})
            for table in changed
        )
    if predicted.get("unknown_functions"):
        shown = ", ".join(f"{name}()" for name in predicted["unknown_functions"])
        subjects.append(
            {
                "tool": tool,
                "database": database,
                "kind": None,
                "table": None,
                "unknown": f"{shown}, of unknown effects",
            }
        )
    return subjects or [{"tool": tool, "database": database, "kind": "other", "table": None}]


def http_subject(tool: str, predicted: dict[str, Any]) -> dict[str, Any]:
    """The request as the server will act on it (see `policy.urls`): its path decoded and
    resolved as servers route it (`/x/%2e%2e/emails` and `//emails` are `/emails`), its host
    lowercased and, for an address, in its usual form (`2130706433` is `127.0.0.1`)."""
    subject = {"tool": tool, **predicted}
    try:
        url = httpx.URL(str(predicted.get("url") or ""))
        path = normal_path(url.raw_path.partition(b"?")[0].decode("ascii"))
    except (httpx.InvalidURL, TypeError, UnicodeDecodeError):
        return {"tool": tool, "unclear": ("http.url", "the URL cannot be read")}
    except AmbiguousPath as ambiguous:
        return {"tool": tool, "unclear": ("http.path", str(ambiguous))}
    host = canonical_host(url.host)
    port = f":{url.port}" if url.port is not None else ""
    query = f"?{url.query.decode()}" if url.query else ""
    shown = f"[{host}]" if ":" in host else host
    subject.update(host=host, path=path, url=f"{url.scheme}://{shown}{port}{path}{query}")
    return subject


def moved_to(proposal: Proposal, reached: Sequence[str]) -> list[str]:
    """Where a move puts each path under its source: `move_path("tmp", ".github")` creates
    `.github/workflows/ci.yml` from `tmp/workflows/ci.yml`, and a rule on it must see it."""
    if proposal.tool != "move_path":
        return []
    source = normalize(str(proposal.inputs.get("source") or ""))
    destination = normalize(str(proposal.inputs.get("destination") or ""))
    if not source or not destination:
        return []
    return [destination + path[len(source) :] for path in reached if path.startswith(source + "/")]


def tree(workspace: str, paths: Sequence[str]) -> list[str]:
    """Every path under those of `paths` that are directories of the workspace: deleting,
    moving or copying `src` acts on `src/.env` too, so a rule on `**/.env` must see it."""
    found: list[str] = []
    root = Path(workspace)
    for path in paths:
        top = root / path
        if not path or top.is_symlink() or not top.is_dir():
            continue
        for current, dirs, files in os.walk(top):  # symlinks are listed, never followed
            base = Path(current).relative_to(root).as_posix()
            found.extend(f"{base}/{name}" for name in sorted([*dirs, *files]))
    return found


def normalize(path: str) -> str:
    """A workspace-relative path in canonical form; `..` that leaves the root stays visible."""
    clean = posixpath.normpath(path.replace("\\", "/"))
    return "" if clean == "." else clean


def outside_workspace(path: str) -> bool:
    return path.startswith("/") or path == ".." or path.startswith("../")


def _tools_match(rule: Rule, subject: dict[str, Any]) -> bool:
    return rule.tools is None or subject["tool"] in rule.tools


def _matches(rule: Rule, subject: dict[str, Any]) -> bool:
    if isinstance(rule, FsRule):
        return _match_fs(rule, subject)
    if isinstance(rule, SqlRule):
        return _match_sql(rule, subject)
    if isinstance(rule, HttpRule):
        return _match_http(rule, subject)
    return True


def _match_fs(rule: FsRule, subject: dict[str, Any]) -> bool:
    if rule.paths is not None:
        return "path" in subject and any(path_glob(g, subject["path"]) for g in rule.paths)
    if rule.commands is not None:
        if "command" not in subject:
            return False
        if rule.decision == "allow":  # only the very line, and a program named as it is
            return bool(subject["literal"]) and _any_glob(rule.commands, subject["command"])
        return any(_any_glob(rule.commands, subject[key]) for key in ("command", "program"))
    return True


def _match_sql(rule: SqlRule, subject: dict[str, Any]) -> bool:
    databases = rule.databases is None or _any_glob(rule.databases, subject["database"])
    if subject.get("unknown"):  # may read, write or alter anything: every rule but an allow
        narrow = rule.kinds is not None or rule.tables is not None  # naming what it allows
        return databases and not (rule.decision == "allow" and narrow)
    if rule.kinds is not None and subject["kind"] not in rule.kinds:
        return False
    if rule.tables is not None:
        table = subject["table"]
        if table is None:  # a statement naming no table we can see (a DO block, CALL, ...)
            if rule.decision == "allow" or subject["kind"] == "read":
                return False  # may touch any table: never allowed by, always held to, a rule
        elif not any(table_glob(g, table) for g in rule.tables):
            return False
    return databases


def _match_http(rule: HttpRule, subject: dict[str, Any]) -> bool:
    method = str(subject.get("method") or "").upper()
    if rule.methods is not None and method not in {m.upper() for m in rule.methods}:
        return False
    if rule.hosts is not None and not _match_host(rule, str(subject.get("host") or "")):
        return False
    checks = ((rule.urls, "url"), (rule.paths, "path"))
    for globs, key in checks:
        if globs is not None and not _any_glob(globs, str(subject.get(key) or "")):
            return False
    return True


def _match_host(rule: HttpRule, host: str) -> bool:
    """A host glob matches the host's name; one naming an address matches every spelling
    of it, and, in a refuse or ask rule, every name resolving to it (or one that cannot be
    resolved now: what cannot be told is held to the stricter rule)."""
    assert rule.hosts is not None
    globs = [canonical_host(g) if ip_address(g.strip("[]")) else g for g in rule.hosts]
    if _any_glob(globs, host, fold=True):
        return True
    named = {g for g in globs if ip_address(g) is not None}
    if rule.decision == "allow" or not named or ip_address(host) is not None:
        return False
    resolved = addresses(host)
    return resolved is None or bool(resolved & named)


def table_glob(glob: str, table: str) -> bool:
    """Case-insensitive; a glob without a `.` matches the table's own name whatever schema
    qualifies it (`audit_*` matches `public.audit_log`), one with a `.` the qualified name."""
    name = table if "." in glob else table.rpartition(".")[2]
    return fnmatch.fnmatchcase(name.lower(), glob.lower())


def _any_glob(globs: Sequence[str], value: str, *, fold: bool = False) -> bool:
    if fold:
        return any(fnmatch.fnmatchcase(value.lower(), g.lower()) for g in globs)
    return any(fnmatch.fnmatchcase(value, g) for g in globs)


def path_glob(glob: str, path: str) -> bool:
    """`*` and `?` stay within one directory; `**` spans any number of directories."""
    return _path_regex(glob).fullmatch(path) is not None


@lru_cache(maxsize=512)
def _path_regex(glob: str) -> re.Pattern[str]:
    glob = normalize(glob) if glob not in ("**", "") else glob
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def _describe(subject: dict[str, Any]) -> str:
    shown = {
        k: v
        for k, v in subject.items()
        if k in ("path", "command", "kind", "table", "method", "url", "unknown", "changes")
    }
    return ", ".join(f"{k} {v!r}" for k, v in shown.items() if v is not None) or "the action"
