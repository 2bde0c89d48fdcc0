"""Policy over the real filesystem domain: path globs, shell commands, network, sandboxes.

Every test compares the workspace's full manifest (path, type, mode, size, hash, link).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, StepStatus
from goex_tools.domains.fs import Workspace
from goex_tools.policy import ApprovalRequest, Policy
from goex_tools.policy.doctor import doctor, sandbox_problem

MakePolicy = Callable[..., Policy]

RULES = """\
default: refuse
fs:
  rules:
    - paths: ["src/**", "docs/**"]
      decision: allow
    - name: secrets
      paths: ["**/.env", "**/*.pem"]
      decision: refuse
    - paths: ["docs/release/*"]
      decision: ask
    - commands: ["ls*", "cat *", "echo *", "sed -i *", "mv src/* src/*"]
      decision: allow
    - name: no-force
      commands: ["rm -rf*", "*--force*"]
      decision: refuse
    - commands: ["git *"]
      decision: ask
"""


@pytest.fixture
def ws(workspace: Path, tmp_path: Path) -> Workspace:
    return Workspace(workspace, store=tmp_path / "store")


def yes_to(*paths: str) -> Callable[[ApprovalRequest], bool]:
    def approve(request: ApprovalRequest) -> bool:
        named = request.predicted.get("paths") or [request.predicted.get("command")]
        return all(p in paths for p in named)

    return approve


def test_path_globs_allow_refuse_and_ask_over_the_file_tools(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(RULES, approver=yes_to("docs/release/notes.md"))
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        ws.write_file("src/util.py", "X = 1\n")
        ws.edit_file("src/app.py", "hi", "hello")
        ws.make_dir("docs/release")
        ws.write_file("docs/release/notes.md", "v1\n")  # asked, approved
        refused = [
            lambda: ws.write_file("docs/release/draft.md", "no"),  # asked, not approved
            lambda: ws.write_file("src/.env", "TOKEN=x"),
            lambda: ws.write_file("setup.cfg", "[x]"),  # matches no rule: default refuse
            lambda: ws.move_path("src/app.py", "app.py"),  # one of its two paths is refused
            lambda: ws.delete_path("README.md"),
        ]
        for attempt in refused:
            with pytest.raises(ActionRefused):
                attempt()
    after = ws.manifest()
    assert sorted(set(after) - set(before)) == [
        "docs",
        "docs/release",
        "docs/release/notes.md",
        "src/util.py",
    ]
    assert {p: e for p, e in after.items() if p in before and e != before[p]}.keys() == {
        "src/app.py"
    }
    decided = [
        (s.tool, s.status.value, s.decision.rule if s.decision else None)
        for s in sqlite_journal.steps(run.id)
    ]
    assert decided == [
        ("write_file", "applied", "fs.rules[0]"),
        ("edit_file", "applied", "fs.rules[0]"),
        ("make_dir", "applied", "fs.rules[0]"),
        ("write_file", "applied", "fs.rules[2]"),
        ("write_file", "refused", "fs.rules[2]"),
        ("write_file", "refused", "secrets"),
        ("write_file", "refused", "default"),
        ("move_path", "refused", "default"),
        ("delete_path", "refused", "default"),
    ]
    goex.rollback(run.id, journal=sqlite_journal)
    assert ws.manifest() == before


def test_shell_command_globs_allow_refuse_and_ask(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(RULES, approver=yes_to("git status"))
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        assert ws.run_shell("cat src/app.py").stdout == "print('hi')\n"
        ws.run_shell("sed -i s/hi/yo/ src/app.py")
        ws.run_shell("git status")  # asked, approved; fails (no repository) but may run
        for command in ("rm -rf src", "git push --force", "git commit -am x", "python3 -c 1"):
            with pytest.raises(ActionRefused):
                ws.run_shell(command)
    assert (ws.root / "src" / "app.py").read_text() == "print('yo')\n"
    steps = sqlite_journal.steps(run.id)
    assert [
        (s.inputs["command"], s.status.value, s.decision and s.decision.rule) for s in steps
    ] == [
        ("cat src/app.py", "applied", "fs.rules[3]"),
        ("sed -i s/hi/yo/ src/app.py", "applied", "fs.rules[3]"),
        ("git status", "applied", "fs.rules[5]"),
        ("rm -rf src", "refused", "no-force"),
        ("git push --force", "refused", "no-force"),
        ("git commit -am x", "refused", "fs.rules[5]"),
        ("python3 -c 1", "refused", "default"),
    ]
    goex.rollback(run.id, journal=sqlite_journal)
    assert ws.manifest() == before


@pytest.mark.parametrize(("network", "runs"), [("refuse", False), ("allow", True)])
def test_network_for_run_shell_is_refused_unless_allowed(
    ws: Workspace,
    sqlite_journal: Journal,
    policy_file: MakePolicy,
    network: str,
    runs: bool,
) -> None:
    gate = policy_file(f"default: allow\nfs:\n  network: {network}\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        ws.run_shell("echo offline > off.txt")
        if runs:
            ws.run_shell("echo online > on.txt", network=True)
        else:
            with pytest.raises(ActionRefused, match=r"fs\.network.*asks for network access"):
                ws.run_shell("echo online > on.txt", network=True)
    assert (ws.root / "on.txt").exists() is runs
    assert [s.status for s in sqlite_journal.steps(run.id)][-1] is (
        StepStatus.APPLIED if runs else StepStatus.REFUSED
    )


@pytest.fixture
def broken_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A bwrap that cannot create namespaces, as on kernels that forbid them, first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    sandbox_problem.cache_clear()
    yield
    sandbox_problem.cache_clear()


def test_commands_needing_a_sandbox_are_refused_when_none_works(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy, broken_bwrap: None
) -> None:
    gate = policy_file("default: allow\n")
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        with pytest.raises(ActionRefused, match="the bwrap sandbox does not work on this machine"):
            ws.run_shell("echo hi > x.txt")
        ws.write_file("src/y.txt", "file tools need no sandbox")
    unconfined = Workspace(ws.root, store=ws.store.root, sandbox="none")
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as second,
        pytest.raises(ActionRefused, match="would run without a sandbox"),
    ):
        unconfined.run_shell("echo hi > x.txt")
    assert set(ws.manifest()) - set(before) == {"src/y.txt"}
    steps = sqlite_journal.steps(run.id) + sqlite_journal.steps(second.id)
    assert [(s.tool, s.status.value, s.decision and s.decision.rule) for s in steps] == [
        ("run_shell", "refused", "fs.require_sandbox"),
        ("write_file", "applied", "default"),
        ("run_shell", "refused", "fs.require_sandbox"),
    ]
    report = doctor(sqlite_journal.url, backends=("bwrap",))
    assert report.status_of("sandbox:bwrap") == "fail"
    assert report.status_of("network isolation") == "fail" and not report.ok


def test_without_require_sandbox_an_unconfined_command_may_run(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file("default: allow\nfs:\n  require_sandbox: false\n")
    unconfined = Workspace(ws.root, store=ws.store.root, sandbox="none")
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        unconfined.run_shell("echo hi > x.txt")
    assert (ws.root / "x.txt").read_text() == "hi\n"


CHAINED = [
    "echo hi; rm -rf src",
    "ls && rm -rf src",
    "ls || rm -rf src",
    "ls | rm -rf src",
    "ls\nrm -rf src",
    "ls#; rm -rf src",  # `#` inside a word starts no comment
    "echo $(rm -rf src)",
    'echo "`rm -rf src`"',  # a double-quoted substitution runs too
    "if ls; then rm -rf src; fi",
    "{ rm -rf src; }",
    "(cd src && rm -rf ../src)",
    "KEEP=1 rm -rf src",
]


@pytest.mark.parametrize("default", ["refuse", "allow"])
def test_an_allowed_command_cannot_carry_a_refused_one(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy, default: str
) -> None:
    """Rules match each simple command of the line: `echo *` does not allow `echo; rm`."""
    gate = policy_file(
        f"default: {default}\nfs:\n  rules:\n"
        '    - {commands: ["echo *", "ls*", "cd *"], decision: allow}\n'
        '    - {name: no-rm, commands: ["rm *"], decision: refuse}\n'
    )
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for command in CHAINED:
            with pytest.raises(ActionRefused, match="rule 'no-rm'"):
                ws.run_shell(command)
        ws.run_shell("echo hi > x.txt && ls src 2>&1 >/dev/null; echo 'a; b' >> x.txt")
    assert ws.manifest().keys() == before.keys() | {"x.txt"}
    assert (ws.root / "x.txt").read_text() == "hi\na; b\n"
    steps = sqlite_journal.steps(run.id)
    assert [s.status.value for s in steps] == ["refused"] * len(CHAINED) + ["applied"]


def test_a_sandbox_that_does_not_work_here_is_refused_not_bypassed(
    ws: Workspace,
    sqlite_journal: Journal,
    policy_file: MakePolicy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real docker backend, pointed at a socket where no engine answers."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    sandbox_problem.cache_clear()
    try:
        assert "no Docker engine answers" in str(sandbox_problem("docker"))
        gate = policy_file("default: allow\n")
        docker = Workspace(ws.root, store=ws.store.root, sandbox="docker")
        before = ws.manifest()
        with (
            goex.run("agent", journal=sqlite_journal, gate=gate) as run,
            pytest.raises(ActionRefused, match="the docker sandbox does not work on this machine"),
        ):
            docker.run_shell("echo hi > x.txt")
        assert ws.manifest() == before
        (step,) = sqlite_journal.steps(run.id)
        assert step.status is StepStatus.REFUSED and step.decision is not None
        assert step.decision.rule == "fs.require_sandbox"
        report = doctor(sqlite_journal.url, backends=("docker", "bwrap"))
        assert report.status_of("sandbox:docker") == "warn"
        assert report.status_of("sandbox:bwrap") == "ok"
    finally:
        sandbox_problem.cache_clear()  # the real engine's answer, for the tests after


def test_a_path_rule_sees_what_a_directory_operation_reaches(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """Deleting, moving or copying `src` acts on `src/keys/id.pem`: a rule on it applies."""
    (ws.root / "src" / "keys").mkdir()
    (ws.root / "src" / "keys" / "id.pem").write_text("KEY")
    (ws.root / "lib").mkdir()
    (ws.root / "lib" / "util.py").write_text("X = 1\n")
    gate = policy_file(
        "default: allow\nfs:\n  rules:\n    - {name: keys, paths: ['**/*.pem'], decision: refuse}\n"
    )
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for attempt in (
            lambda: ws.delete_path("src"),
            lambda: ws.move_path("src", "old"),
            lambda: ws.move_path("src/keys", "public"),
        ):
            with pytest.raises(ActionRefused, match=r"rule 'keys'.*id\.pem"):
                attempt()
        assert ws.manifest() == before
        ws.delete_path("lib")  # nothing under it is refused
    assert set(before) - set(ws.manifest()) == {"lib", "lib/util.py"}
    steps = sqlite_journal.steps(run.id)
    assert [s.status.value for s in steps] == ["refused"] * 3 + ["applied"]


def test_move_path_holds_the_destinations_future_subtree_to_the_rules(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """Moving a directory creates every path under it again at the destination: a rule on
    `.github/workflows/**` or on `config/prod.yaml` sees the files the move would put there."""
    for rel, text in {
        "tmpw/ci.yml": "on: push",
        "tmpc/prod.yaml": "db: prod",
        "tmpg/workflows/deploy.yml": "on: push",
        "tmpd/sub/notes.txt": "ok",
    }.items():
        (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / rel).write_text(text)
    gate = policy_file(
        "default: allow\nfs:\n  rules:\n"
        "    - {name: workflows, paths: ['.github/workflows/**'], decision: refuse}\n"
        "    - {name: prod, paths: ['config/prod.yaml'], decision: refuse}\n"
    )
    before = ws.manifest()
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for source, destination, rule in (
            ("tmpw", ".github/workflows", "workflows"),
            ("tmpc", "config", "prod"),
            ("tmpg", ".github", "workflows"),
        ):
            with pytest.raises(ActionRefused, match=f"rule '{rule}'"):
                ws.move_path(source, destination)
        assert ws.manifest() == before
        ws.move_path("tmpd", "docs")  # nothing it would create is refused
    assert (ws.root / "docs" / "sub" / "notes.txt").read_text() == "ok"
    steps = sqlite_journal.steps(run.id)
    assert [s.status.value for s in steps] == ["refused"] * 3 + ["applied"]
