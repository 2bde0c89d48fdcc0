"""Failures and crashes never leave the journal lying about the workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import StepStatus
from goex_tools.domains.fs import Workspace
from tests.fs.conftest import manifest
from tests.fs.test_shell import _processes_running


@pytest.fixture
def read_only_mount(root: Path) -> Iterator[Path]:
    """A read-only tmpfs mounted inside the workspace: applying a write there fails (EROFS).

    Mounts below the workspace are not part of the overlay's lower layer, so the sandboxed
    command writes there freely; only applying the change to the real workspace fails.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    path = root / "zz_ro"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,mode=755", "goex-ro", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=True)


def test_an_apply_failing_half_way_is_journaled_as_applied_and_undone_exactly(
    ws: Workspace, root: Path, journal: goex.Journal, read_only_mount: Path
) -> None:
    before = manifest(root)
    with goex.run("half", journal=journal) as run, pytest.raises(OSError, match="Read-only"):
        ws.run_shell("rm src/main.py && echo x > zz_ro/new.txt")
    (step,) = journal.steps(run.id)
    # Deletions go first: src/main.py is gone, then zz_ro/new.txt failed; the journal says so.
    assert not (root / "src" / "main.py").exists()
    assert step.status is StepStatus.APPLIED
    assert any("but its effect happened" in note for note in step.notes)
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


CRASHING = """
import sys
import goex_tools as goex
from goex_tools.domains.fs import Workspace
ws = Workspace(sys.argv[1], store=sys.argv[2])
with goex.run("crash", journal=sys.argv[3]):
    ws.run_shell("echo lost > lost.txt; sleep " + sys.argv[4])
"""


def test_a_crash_while_a_command_runs_is_recovered_as_not_happened(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING, str(root), str(ws.store.root), journal.url, "4242"]
    )
    deadline = time.monotonic() + 30
    while not _processes_running("sleep 4242") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_running("sleep 4242"), "the command never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _processes_running("sleep 4242") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_running("sleep 4242") == []  # the sandbox died with its parent

    (pending,) = journal.steps_with_status(StepStatus.PENDING)
    (outcome,) = goex.recover(journal)
    assert outcome.step_id == pending.id and outcome.resolution == "failed"
    assert journal.get_step(pending.id).status is StepStatus.FAILED
    assert manifest(root) == before
