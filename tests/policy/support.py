"""Real actions for the gate tests: proposals with a `predicted` effect, run through the runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import goex_tools as goex
from goex_tools import Proposal, Reversibility, StepHandle, call_compensation
from tests.support.fileops import remove_file


def write(workspace: Path, rel: str, text: str, *, irreversible: bool = False) -> str:
    """Write a file through the lifecycle, journaling fs-shaped predicted and effect fields."""
    target = workspace / rel
    proposal = Proposal(
        tool="write_file",
        domain="fs",
        inputs={"path": rel, "text": text},
        reversibility=Reversibility.IRREVERSIBLE if irreversible else Reversibility.REVERSIBLE,
        compensation=None
        if irreversible
        else call_compensation(remove_file, {"path": str(target)}),
        predicted={"workspace": str(workspace), "paths": [rel]},
    )

    def effect(handle: StepHandle) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        handle.effect = {"changes": [{"path": rel, "change": "added"}], "bytes_written": len(text)}
        return rel

    return goex.execute(proposal, effect)


def proposal_for(domain: str, tool: str, predicted: dict[str, Any]) -> Proposal:
    return Proposal(
        tool=tool, domain=domain, reversibility=Reversibility.NO_EFFECT, predicted=predicted
    )


def record(journal_path: Path, line: str) -> None:
    """An effect a test can see: one line appended to a file."""
    with journal_path.open("a") as fh:
        fh.write(line + "\n")


def run_unversioned(workspace: Path, command: str) -> None:
    """A shell tool that keeps no before-images: sandboxed, but journaled as irreversible."""
    from goex_tools.policy.shell import run_in_workspace

    proposal = Proposal(
        tool="run_shell",
        domain="fs",
        inputs={"command": command},
        reversibility=Reversibility.IRREVERSIBLE,
        predicted={
            "workspace": str(workspace),
            "paths": [],
            "command": command,
            "sandbox": "bwrap",
            "network": False,
        },
    )

    def effect(handle: StepHandle) -> None:
        run_in_workspace(command, str(workspace), "bwrap")

    goex.execute(proposal, effect)
