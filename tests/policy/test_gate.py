"""The policy gate over real runs: verdicts, the rule that decided, approval modes, budgets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, StepHandle, StepStatus
from goex_tools.policy import ApprovalRequest, ConsolePrompt, Policy, PolicyError
from tests.policy.support import proposal_for, record, write

MakePolicy = Callable[..., Policy]

PATHS = """\
default: refuse
fs:
  rules:
    - paths: ["src/**", "README.md"]
      decision: allow
    - name: no-env-files
      paths: ["**/.env", "**/*.key"]
      decision: refuse
    - paths: ["docs/*.md"]
      decision: ask
"""


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


class Approvals:
    """An approval hook that answers from a script and keeps every request it was shown."""

    name = "scripted"

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.requests: list[ApprovalRequest] = []

    def __call__(self, request: ApprovalRequest) -> bool:
        self.requests.append(request)
        return self.answers.pop(0)


def test_path_rules_allow_refuse_and_ask(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    approvals = Approvals(True, False)
    gate = policy_file(PATHS, approver=approvals)
    before = files(workspace)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        write(workspace, "src/new.py", "x = 1\n")
        with pytest.raises(ActionRefused, match="refused by rule 'no-env-files'"):
            write(workspace, "src/.env", "TOKEN=1")
        with pytest.raises(ActionRefused, match="refused by rule 'default'"):
            write(workspace, "setup.cfg", "[x]")
        write(workspace, "docs/guide.md", "approved")
        with pytest.raises(ActionRefused, match=r"refused by rule 'fs.rules\[2\]'"):
            write(workspace, "docs/other.md", "not approved")
        with pytest.raises(ActionRefused, match="no-env-files"):
            write(workspace, "src/deep/er/id.key", "k")  # ** spans directories
    assert files(workspace) == {**before, "src/new.py": "x = 1\n", "docs/guide.md": "approved"}
    steps = sqlite_journal.steps(run.id)
    assert [(s.inputs["path"], s.status, s.decision and s.decision.rule) for s in steps] == [
        ("src/new.py", StepStatus.APPLIED, "fs.rules[0]"),
        ("src/.env", StepStatus.REFUSED, "no-env-files"),
        ("setup.cfg", StepStatus.REFUSED, "default"),
        ("docs/guide.md", StepStatus.APPLIED, "fs.rules[2]"),
        ("docs/other.md", StepStatus.REFUSED, "fs.rules[2]"),
        ("src/deep/er/id.key", StepStatus.REFUSED, "no-env-files"),
    ]
    assert steps[3].decision is not None and steps[3].decision.approved_by == "scripted"
    assert steps[4].decision is not None and steps[4].decision.reason.endswith(
        "refused by scripted"
    )
    assert "goex-policy.yaml:6" in (steps[1].decision.reason if steps[1].decision else "")
    assert [r.predicted["paths"] for r in approvals.requests] == [
        ["docs/guide.md"],
        ["docs/other.md"],
    ]


def test_the_strictest_matching_rule_wins_whatever_the_order(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    gate = policy_file(
        "default: allow\nfs:\n  rules:\n"
        "    - {paths: ['secret/**'], decision: refuse}\n"
        "    - {paths: ['**'], decision: allow}\n"
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        with pytest.raises(ActionRefused, match=r"fs.rules\[0\]"):
            write(workspace, "secret/a.txt", "no")
        with pytest.raises(ActionRefused, match="outside the workspace"):
            write(workspace, "../escape.txt", "no")
        write(workspace, "open/a.txt", "yes")
    assert not (workspace / "secret").exists() and not (workspace.parent / "escape.txt").exists()
    assert (workspace / "open" / "a.txt").read_text() == "yes"


def test_an_ask_without_an_approver_is_refused(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    gate = policy_file("default: ask\n")
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match="no approver is set"),
    ):
        write(workspace, "a.txt", "x")
    assert not (workspace / "a.txt").exists()
    assert [s.status for s in sqlite_journal.steps(run.id)] == [StepStatus.REFUSED]


@pytest.mark.parametrize(
    ("mode", "asked_for"),
    [
        ("auto", []),
        ("confirm-irreversible", ["once.txt"]),
        ("confirm-all", ["undoable.txt", "once.txt"]),
    ],
)
def test_approval_modes(
    sqlite_journal: Journal,
    workspace: Path,
    policy_file: MakePolicy,
    mode: str,
    asked_for: list[str],
) -> None:
    approvals = Approvals(True, True)
    gate = policy_file(
        f"default: allow\nirreversible: allow\napproval: {mode}\n", approver=approvals
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        write(workspace, "undoable.txt", "u")
        write(workspace, "once.txt", "o", irreversible=True)
    assert [r.proposal.inputs["path"] for r in approvals.requests] == asked_for
    shown = {r.proposal.inputs["path"]: r for r in approvals.requests}
    if "once.txt" in shown:
        assert shown["once.txt"].irreversible and shown["once.txt"].compensation is None
        assert "none: this action cannot be undone" in shown["once.txt"].describe()
    if "undoable.txt" in shown:
        assert shown["undoable.txt"].compensation is not None


def test_mode_given_to_the_gate_overrides_the_file(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    gate = policy_file(
        "default: allow\napproval: auto\n", mode="confirm-all", approver=Approvals(False)
    )
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate),
        pytest.raises(ActionRefused, match="approval:confirm-all"),
    ):
        write(workspace, "a.txt", "x")


@pytest.mark.parametrize(("verdict", "runs"), [("allow", True), ("refuse", False)])
def test_irreversible_actions_may_be_forbidden(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy, verdict: str, runs: bool
) -> None:
    gate = policy_file(f"default: allow\nirreversible: {verdict}\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        write(workspace, "undoable.txt", "u")
        if runs:
            write(workspace, "once.txt", "o", irreversible=True)
        else:
            with pytest.raises(ActionRefused, match=r"rule 'irreversible'.*cannot be undone"):
                write(workspace, "once.txt", "o", irreversible=True)
    assert (workspace / "once.txt").exists() is runs
    statuses = [s.status for s in sqlite_journal.steps(run.id)]
    assert statuses == [
        StepStatus.APPLIED,
        StepStatus.IRREVERSIBLE if runs else StepStatus.REFUSED,
    ]


def test_the_console_prompt_shows_the_request_and_reads_the_answer(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    shown: list[str] = []
    answers = iter(["yes", "n"])
    prompt = ConsolePrompt(ask=lambda _: next(answers), show=shown.append)
    gate = policy_file("default: ask\n", approver=prompt)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        write(workspace, "a.txt", "x")
        with pytest.raises(ActionRefused, match="refused by console"):
            write(workspace, "b.txt", "y")
    assert files(workspace).get("a.txt") == "x" and "b.txt" not in files(workspace)
    assert shown[0].splitlines() == [
        "fs.write_file asks for approval (default: no rule matched path 'a.txt' (%s:1))"
        % (Path(workspace.parent) / "goex-policy.yaml"),
        '  inputs:    {"path": "a.txt", "text": "x"}',
        f'  predicted: {{"paths": ["a.txt"], "workspace": "{workspace}"}}',
        f"  undo:      exact: remove_file(path='{workspace}/a.txt')",
    ]
    step = sqlite_journal.steps(run.id)[0]
    assert step.decision is not None and step.decision.approved_by == "console"

    def eof(_: str) -> str:
        raise EOFError

    assert (
        ConsolePrompt(ask=eof, show=shown.append)(
            ApprovalRequest(step_proposal(workspace), run.id, "default", "")
        )
        is False
    )


def step_proposal(workspace: Path) -> Any:
    return proposal_for("fs", "write_file", {"workspace": str(workspace), "paths": ["c.txt"]})


def http_call(log: Path, url: str) -> None:
    proposal = proposal_for(
        "http", "http_request", {"method": "GET", "url": url, "host": "h", "path": "/"}
    )

    def effect(handle: StepHandle) -> None:
        record(log, url)
        handle.effect = {"status_code": 200}

    goex.execute(proposal, effect)


def sql_write(log: Path, rows: int) -> None:
    statement = {"sql": "UPDATE t SET x = 1", "kind": "write", "tables": ["t"]}
    proposal = proposal_for(
        "sql", "run_sql", {"database": "sqlite:///x", "statements": [statement]}
    )

    def effect(handle: StepHandle) -> None:
        record(log, f"rows {rows}")
        handle.effect = {"rows_changed": rows, "tables": {"t": {"updated": rows}}}

    goex.execute(proposal, effect)


def test_budgets_refuse_once_spent(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    gate = policy_file(
        "default: allow\nbudgets:\n  max_bytes_written: 5\n  max_http_calls: 2\n"
        "  max_rows_changed: 10\n"
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        write(workspace, "a.txt", "1234")
        write(workspace, "b.txt", "56")  # 4 < 5 bytes used before it: allowed, overshoots
        with pytest.raises(ActionRefused, match=r"budgets\.max_bytes_written.*6 used"):
            write(workspace, "c.txt", "7")
        http_call(log, "/1")
        http_call(log, "/2")
        with pytest.raises(ActionRefused, match="budget of 2 HTTP calls is spent"):
            http_call(log, "/3")
        sql_write(log, 7)
        sql_write(log, 3)
        with pytest.raises(ActionRefused, match=r"budgets\.max_rows_changed"):
            sql_write(log, 1)
    assert log.read_text().splitlines() == ["/1", "/2", "rows 7", "rows 3"]
    assert not (workspace / "c.txt").exists()
    refused = [
        s.decision.rule
        for s in sqlite_journal.steps(run.id)
        if s.decision and not s.decision.allowed
    ]
    assert refused == [
        "budgets.max_bytes_written",
        "budgets.max_http_calls",
        "budgets.max_rows_changed",
    ]


def test_the_step_budget_counts_the_runs_journal_across_processes(
    journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    gate = policy_file("default: allow\nbudgets:\n  max_steps: 2\n")
    with goex.run("agent", journal=journal, gate=gate) as run:
        write(workspace, "a.txt", "a")
    with goex.run(run_id=run.id, journal=journal, gate=gate):  # the run continued later
        write(workspace, "b.txt", "b")
        with pytest.raises(ActionRefused, match="budget of 2 steps is spent"):
            write(workspace, "c.txt", "c")
    assert [s.status for s in journal.steps(run.id)] == [
        StepStatus.APPLIED,
        StepStatus.APPLIED,
        StepStatus.REFUSED,
    ]


def test_an_approver_that_never_answers_is_refused_after_the_timeout(
    sqlite_journal: Journal, workspace: Path, policy_file: MakePolicy
) -> None:
    release = threading.Event()

    def silent(request: ApprovalRequest) -> bool:
        release.wait(30)  # a person who walked away; answers yes when released
        return True

    gate = policy_file("default: ask\napproval_timeout: 0.5\n", approver=silent)
    started = time.monotonic()
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match=r"no answer from silent within 0\.5 s"),
    ):
        write(workspace, "a.txt", "x")
    assert time.monotonic() - started < 10
    release.set()  # the late yes changes nothing
    time.sleep(0.1)
    assert not (workspace / "a.txt").exists()
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.REFUSED and step.decision is not None
    assert "no answer from silent within 0.5 s" in step.decision.reason
    with pytest.raises(PolicyError, match="approval_timeout"):
        policy_file("default: ask\napproval_timeout: 0\n")
