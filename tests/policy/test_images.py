"""A policy names the images docker commands may run in (`fs.images`): a command in any
other image is refused before anything runs, on the real engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, StepStatus
from goex_tools.domains.fs import Workspace
from goex_tools.policy import Policy
from tests.fs.conftest import require_engine

IMAGES = """\
default: allow
fs:
  images: ["goex-sandbox:*"]
"""


def test_images_a_command_in_an_image_the_policy_names_runs(
    workspace: Path, tmp_path: Path, sqlite_journal: Journal, policy_file: Callable[..., Policy]
) -> None:
    require_engine()
    ws = Workspace(workspace, store=tmp_path / "store", sandbox="docker")
    with goex.run("agent", journal=sqlite_journal, gate=policy_file(IMAGES)):
        result = ws.run_shell("echo ran > ran.txt")
    assert result.exit_code == 0 and (workspace / "ran.txt").read_text() == "ran\n"


@pytest.mark.parametrize("image", ["debian:bookworm", "goex-sandbox-evil:1"])
def test_images_a_command_in_any_other_image_is_refused_before_running(
    workspace: Path,
    tmp_path: Path,
    sqlite_journal: Journal,
    policy_file: Callable[..., Policy],
    image: str,
) -> None:
    ws = Workspace(workspace, store=tmp_path / "store", sandbox="docker", image=image)
    before = ws.manifest()
    with (
        goex.run("agent", journal=sqlite_journal, gate=policy_file(IMAGES)) as run,
        pytest.raises(ActionRefused, match=f"the image {image}, which fs.images does not name"),
    ):
        ws.run_shell("echo ran > ran.txt")
    assert ws.manifest() == before
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.REFUSED and step.decision is not None
    assert step.decision.rule == "fs.images"


def test_images_a_policy_without_the_list_lets_any_image_through_the_gate(
    workspace: Path, tmp_path: Path, sqlite_journal: Journal, policy_file: Callable[..., Policy]
) -> None:
    """The gate does not judge the image then; the engine still must have it."""
    require_engine()
    ws = Workspace(workspace, store=tmp_path / "store", sandbox="docker", image="goex-nope:0")
    with (
        goex.run("agent", journal=sqlite_journal, gate=policy_file("default: allow\n")) as run,
        pytest.raises(goex.GoexError, match="goex-nope:0 is not in the engine"),
    ):
        ws.run_shell("echo ran > ran.txt")
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.FAILED
