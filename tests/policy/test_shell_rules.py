"""Command rules follow the parse the shell will make (real bwrap, real dash as `sh`).

An allow-list with `default: refuse` must confine: a line is allowed only if every program it
runs, as the shell reads it (backticks, comments, quoting, substitutions, functions), is
allowed; a line the shell may read another way (POSIX sh vs bash) is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal
from goex_tools.domains.fs import Workspace
from goex_tools.policy import Policy
from goex_tools.policy.commands import UnclearCommand, simple_commands

MakePolicy = Callable[..., Policy]

ALLOW_ECHO_LS = (
    "default: refuse\nfs:\n  rules:\n"
    '    - {commands: ["echo *", "ls", "ls *", "cat", "cat *"], decision: allow}\n'
    '    - {paths: ["**"], decision: allow}\n'
)

SMUGGLED = [
    'echo `echo #"`; rm -rf src; echo #"',  # the backticks end at the second backtick
    'ls `ls #"`; rm -rf src; ls #"',
    "echo x #'\nrm -rf src\n#'",  # a comment ends at the newline
    "PATH=.:$PATH ls",  # runs the workspace's own `ls`
    "cat <<EOF\n$(rm -rf src)\nEOF",  # a here-document's substitution runs
    "echo ${x:-$(rm -rf src)}",
    "ls() { rm -rf src; }; ls",
    "\\rm -rf src",
    "echo hi; r\\m -rf src",
]


@pytest.fixture
def ws(workspace: Path, tmp_path: Path) -> Workspace:
    script = workspace / "ls"
    script.write_text("#!/bin/sh\nrm -rf src\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Workspace(workspace, store=tmp_path / "store")


@pytest.mark.parametrize("command", SMUGGLED)
def test_shell_allow_list_refuses_a_program_hidden_from_a_naive_split(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy, command: str
) -> None:
    gate = policy_file(ALLOW_ECHO_LS)
    before = ws.manifest()
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match="rule 'default'"),
    ):
        ws.run_shell(command)
    assert ws.manifest() == before
    assert [s.status.value for s in sqlite_journal.steps(run.id)] == ["refused"]


@pytest.mark.parametrize(
    "command",
    [
        "echo hi &> out.txt",  # bash: a redirection; dash: `echo hi &` then `> out.txt`
        "echo $'\\x27'",  # bash: ANSI-C quoting; dash: `$` and a quoted string
        "[[ -f x ]] && echo yes",  # bash: a test; dash: a program named `[[`
        "{echo,hi}",  # bash: brace expansion runs `echo hi`; dash: a program `{echo,hi}`
        "time echo hi",  # bash: a keyword; dash: /usr/bin/time
        'echo "`echo \'`"; echo x > y; echo "\'"',  # bash runs `echo x > y`, dash nothing
        'echo "$(echo ")"; echo x > y; echo "$(echo ")"',  # no shell runs it
        "echo (",
        "echo \x00x",
    ],
)
def test_shell_line_read_differently_by_dash_and_bash_is_refused(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy, command: str
) -> None:
    gate = policy_file("default: allow\nfs:\n  rules: [{commands: ['echo *'], decision: allow}]\n")
    before = ws.manifest()
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate),
        pytest.raises(ActionRefused, match=r"rule 'fs\.commands'"),
    ):
        ws.run_shell(command)
    assert ws.manifest() == before


def test_shell_allow_list_lets_ordinary_lines_through(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(ALLOW_ECHO_LS)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        ws.run_shell("echo 'a; b' > x.txt && ls src 2>&1 >/dev/null; echo \"#c\" >> x.txt")
        ws.run_shell("cat <<'EOF' > y.txt\n$(not run)\nEOF")
        ws.run_shell('e\\cho "$(ls src)" `echo z` # a comment; rm -rf src')
    assert (ws.root / "x.txt").read_text() == "a; b\n#c\n"
    assert (ws.root / "y.txt").read_text() == "$(not run)\n"
    assert (ws.root / "src" / "app.py").exists()
    assert [s.status.value for s in sqlite_journal.steps(run.id)] == ["applied"] * 3


@pytest.mark.parametrize(
    "command",
    ["command rm -rf src", "env rm -rf src", "KEEP=1 rm -rf src", "nice -n 5 rm -rf src"],
)
def test_shell_refuse_rule_sees_the_program_behind_a_wrapper(
    ws: Workspace, sqlite_journal: Journal, policy_file: MakePolicy, command: str
) -> None:
    gate = policy_file(
        "default: allow\nfs:\n  rules: [{name: no-rm, commands: ['rm *'], decision: refuse}]\n"
    )
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate),
        pytest.raises(ActionRefused, match="rule 'no-rm'"),
    ):
        ws.run_shell(command)
    assert (ws.root / "src" / "app.py").exists()


def test_simple_commands_are_the_programs_the_shell_runs() -> None:
    found = simple_commands('X=1 e\\cho "a  b" `ls #"`; f() { rm -rf src; }; $(id) -x')
    assert [c.text for c in found] == [
        'X=1 echo a  b `ls #"`',
        "ls",
        "rm -rf src",
        "$(id) -x",
        "id",
    ]
    assert [c.program for c in found] == ['echo a  b `ls #"`', "ls", "rm -rf src", "$(id) -x", "id"]
    assert [c.literal for c in found] == [True, True, True, False, True]
    assert [c.literal for c in simple_commands("PATH=.:$PATH ls; ~/ls; l? x; 'l?'")] == [
        False,
        False,
        False,
        True,
    ]
    with pytest.raises(UnclearCommand, match="bash"):
        simple_commands("echo hi &> x")
    assert os.environ.get("PATH")  # the parser needs no environment of its own
