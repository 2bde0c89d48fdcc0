"""The policy file's shape: per-domain rules, irreversibility, approval mode and budgets.

Each rule names what it matches (paths, commands, hosts, methods, URLs, statement kinds,
tables) and a verdict: `allow`, `ask` (a person approves) or `refuse`. Where several rules
match, the strictest verdict wins (refuse > ask > allow), so the order of rules never weakens
a refusal. What no rule matches gets the domain's `default`, else the file's `default`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Verdict = Literal["allow", "ask", "refuse"]
ApprovalMode = Literal["auto", "confirm-irreversible", "confirm-all"]
StatementKind = Literal["read", "write", "ddl", "other"]

STRICTNESS: dict[Verdict, int] = {"allow": 0, "ask": 1, "refuse": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """Common to every rule: its verdict, an optional name, and the tools it is limited to."""

    decision: Verdict
    name: str | None = None
    reason: str = ""
    tools: list[str] | None = None


class FsRule(Rule):
    """`paths`: workspace-relative globs (`*` within a directory, `**` across directories),
    also held against every path under a directory a tool acts on; `commands`: shell-style
    globs over each simple command of a run_shell line as the shell parses it (see
    `policy.commands`): an allow rule matches the whole command, assignments included, and
    only a program named in plain text; refuse and ask rules also match from the program on
    (past `env`, `command`, `nice -n 5`...)."""

    paths: list[str] | None = None
    commands: list[str] | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> FsRule:
        if self.paths is not None and self.commands is not None:
            raise ValueError("a rule matches either paths or commands, not both")
        return self


class SqlRule(Rule):
    """`kinds` of statement (`other`: what cannot be classified, e.g. DO blocks, CALL),
    `tables` (case-insensitive globs; without a `.` they match the name in any schema; a
    statement that may write but names no visible table is held to refuse/ask table rules
    and never allowed by one), `databases` (globs over the URL, password hidden)."""

    kinds: list[StatementKind] | None = None
    tables: list[str] | None = None
    databases: list[str] | None = None


class HttpRule(Rule):
    """`methods`, `hosts` (globs), `urls` (globs over the URL), `paths` (globs over its path)."""

    methods: list[str] | None = None
    hosts: list[str] | None = None
    urls: list[str] | None = None
    paths: list[str] | None = None


class SandboxCeilings(_Strict):
    """The most a shell command may ask for (see `sandbox.Limits`); a command whose limits
    go past one, or do not say, is refused before it runs. Unset: no ceiling."""

    timeout: float | None = Field(default=None, gt=0)  # seconds of wall-clock time
    memory: int | None = Field(default=None, gt=0)  # bytes
    processes: int | None = Field(default=None, gt=0)
    file_size: int | None = Field(default=None, gt=0)  # bytes
    cpu_time: float | None = Field(default=None, gt=0)  # CPU seconds


class FsPolicy(_Strict):
    """The `fs` section: path and command rules, network access, sandbox requirement,
    limits' ceilings and the docker images run_shell may use."""

    default: Verdict | None = None
    rules: list[FsRule] = Field(default_factory=list)
    network: Verdict = "refuse"  # run_shell asking for network access
    require_sandbox: bool = True  # run_shell only inside a sandbox that works here
    limits: SandboxCeilings = Field(default_factory=SandboxCeilings)
    images: list[str] | None = None  # docker images run_shell may use (globs); None: any


class SqlPolicy(_Strict):
    """The `sql` section: statement kind and table rules, and the rows one action may change."""

    default: Verdict | None = None
    rules: list[SqlRule] = Field(default_factory=list)
    max_rows_changed: int | None = Field(default=None, ge=0)  # per action, measured in a dry run


class HttpPolicy(_Strict):
    """The `http` section: host, method and path rules."""

    default: Verdict | None = None
    rules: list[HttpRule] = Field(default_factory=list)


class Budgets(_Strict):
    """Limits for one run, counted from its journaled steps."""

    max_steps: int | None = Field(default=None, ge=0)
    max_rows_changed: int | None = Field(default=None, ge=0)
    max_bytes_written: int | None = Field(default=None, ge=0)
    max_http_calls: int | None = Field(default=None, ge=0)

    @property
    def any(self) -> bool:
        return any(v is not None for v in self.model_dump().values())


class PolicyConfig(_Strict):
    """A whole policy file."""

    version: Literal[1] = 1
    default: Verdict = "ask"
    irreversible: Verdict = "ask"  # actions nobody can undo
    semantic: Verdict = "allow"  # actions whose undo only approximates (closes, archives)
    approval: ApprovalMode = "auto"
    approval_timeout: float = Field(default=600.0, gt=0)  # seconds; no answer refuses
    llm_undo: bool = True  # ask the undo proposer (if one is given) for irreversible actions
    budgets: Budgets = Field(default_factory=Budgets)
    fs: FsPolicy = Field(default_factory=FsPolicy)
    sql: SqlPolicy = Field(default_factory=SqlPolicy)
    http: HttpPolicy = Field(default_factory=HttpPolicy)


def strictest(*verdicts: Verdict) -> Verdict:
    return max(verdicts, key=STRICTNESS.__getitem__)
