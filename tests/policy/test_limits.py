"""A policy's ceilings on what a shell command may use: a command asking for more than the
policy allows is refused before anything runs, whatever the workspace or the call asks for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, StepStatus
from goex_tools.domains.fs import Workspace
from goex_tools.policy import Policy
from goex_tools.sandbox import Limits

MiB = 1024 * 1024

CEILINGS = """\
default: allow
fs:
  limits:
    memory: 268435456      # 256 MiB
    processes: 64
    file_size: 1048576     # 1 MiB
    cpu_time: 10
    timeout: 30
"""


@pytest.mark.parametrize(
    "asked",
    [
        {"memory": 512 * MiB},  # the workspace's default: above the ceiling
        {"memory": 128 * MiB, "processes": 65},
        {"memory": 128 * MiB, "file_size": 2 * MiB},
        {"memory": 128 * MiB, "cpu_time": 11},
        {"memory": 128 * MiB, "timeout": 31},
    ],
    ids=["default-memory", "processes", "file-size", "cpu-time", "timeout"],
)
def test_limits_above_the_policys_ceiling_are_refused_before_running(
    workspace: Path,
    tmp_path: Path,
    sqlite_journal: Journal,
    policy_file: Callable[..., Policy],
    asked: dict[str, float],
) -> None:
    gate = policy_file(CEILINGS)
    ws = Workspace(
        workspace,
        store=tmp_path / "store",
        limits=Limits(**{"processes": 64, "file_size": MiB, "cpu_time": 10, "timeout": 30} | asked),
    )
    before = ws.manifest()
    name = next(iter(k for k in asked if asked[k] != 128 * MiB), "memory")
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match=f"fs.limits.{name}"),
    ):
        ws.run_shell("touch ran")
    assert ws.manifest() == before  # nothing ran
    [step] = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.REFUSED
    assert step.decision is not None and step.decision.rule == f"fs.limits.{name}"


def test_limits_within_the_policys_ceiling_run(
    workspace: Path, tmp_path: Path, sqlite_journal: Journal, policy_file: Callable[..., Policy]
) -> None:
    gate = policy_file(CEILINGS)
    limits = Limits(memory=256 * MiB, processes=64, file_size=MiB, cpu_time=10, timeout=30)
    ws = Workspace(workspace, store=tmp_path / "store", limits=limits)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        assert ws.run_shell("touch ran").exit_code == 0
    assert (workspace / "ran").exists()
    [step] = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.APPLIED


def test_a_ceiling_on_a_limit_the_proposal_does_not_state_refuses(
    sqlite_journal: Journal, policy_file: Callable[..., Policy]
) -> None:
    """A shell proposal that says nothing of its limits (an older or foreign tool) cannot be
    shown to be within the ceiling, so it is refused, not allowed."""
    gate = policy_file(CEILINGS)
    proposal = goex.Proposal(
        tool="run_shell",
        domain="fs",
        inputs={"command": "true"},
        predicted={"command": "true", "sandbox": "bwrap"},
        reversibility=goex.Reversibility.EXACT,
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        decision = gate.decide(proposal, run)
    assert not decision.allowed and decision.rule.startswith("fs.limits.")
