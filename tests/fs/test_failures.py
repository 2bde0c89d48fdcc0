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
from goex_tools.domains.fs import Workspace, discard, keep
from tests.fs.conftest import manifest
from tests.fs.test_shell import _processes_running, unique_seconds


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
from goex_tools.domains.fs import Workspace, discard, keep
ws = Workspace(sys.argv[1], store=sys.argv[2])
with goex.run("crash", journal=sys.argv[3]):
    ws.run_shell("echo lost > lost.txt; sleep " + sys.argv[4])
"""


def _sleeping(seconds: str) -> list[int]:
    """The `sleep` processes themselves (not the sandbox programs whose argv names them)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and (proc / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode()
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_crash_while_a_command_runs_is_recovered_as_not_happened(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    seconds = unique_seconds()  # a marker no other test run on this machine uses
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING, str(root), str(ws.store.root), journal.url, seconds]
    )
    deadline = time.monotonic() + 30
    while not _sleeping(seconds) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleeping(seconds), "the command never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _processes_running(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_running(f"sleep {seconds}") == _sleeping(seconds) == []  # died with it

    (pending,) = journal.steps_with_status(StepStatus.PENDING)
    (outcome,) = goex.recover(journal)
    assert outcome.step_id == pending.id and outcome.resolution == "failed"
    assert journal.get_step(pending.id).status is StepStatus.FAILED
    assert manifest(root) == before


SPAWN_THEN_DIE = """
import os, subprocess, sys
import goex_tools as goex
from goex_tools.domains.fs import Workspace
from goex_tools.sandbox import process
real = subprocess.Popen
def spawn_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os._exit(9)  # before the sandbox's first program could ask to die with its parent
process.subprocess.Popen = spawn_then_die
ws = Workspace(sys.argv[1], store=sys.argv[2], sandbox=sys.argv[5])
with goex.run("spawn", journal=sys.argv[3]):
    ws.run_shell("sleep " + sys.argv[4])
"""


@pytest.mark.parametrize("backend", ["bwrap", "none"])
def test_a_goex_killed_right_after_spawning_a_sandbox_leaves_nothing_running(
    ws: Workspace, journal: goex.Journal, backend: str
) -> None:
    """The pdeath signal is set by the sandbox's first program, a moment after it starts; a
    parent gone by then must stop the chain (this was the flaky test's real cause)."""
    for _ in range(3):
        seconds = unique_seconds()
        argv = [sys.executable, "-c", SPAWN_THEN_DIE, str(ws.root), str(ws.store.root)]
        done = subprocess.run([*argv, journal.url, seconds, backend], capture_output=True)
        assert done.returncode == 9, done.stderr
        time.sleep(1.5)  # a chain that went on would be sleeping by now
        assert _processes_running(f"sleep {seconds}") == _sleeping(seconds) == []


# A crash (kill -9) at a precise point: the child process replaces one internal function with
# one that ends the process there, so the journal and the workspace are left exactly as a
# crash at that point would leave them. Recovery and rollback then run for real.
CRASH_AT = """
import os, sys
import goex_tools as goex
from goex_tools import runtime
from goex_tools.domains.fs import Workspace, keep
from goex_tools.domains.fs import apply as fs_apply
root, store, journal, point, action = sys.argv[1:6]
if point == "mid-apply":
    real_create, calls = fs_apply._create, []
    def crashing_create(*args):
        calls.append(args)
        if len(calls) == 3:
            os._exit(9)
        real_create(*args)
    fs_apply._create = crashing_create
elif point == "before-journal":
    runtime.StepHandle.finish = lambda self, result=None: os._exit(9)
if action == "keep":
    keep(sys.argv[6], journal=journal)
    os._exit(0)
ws = Workspace(root, store=store)
with goex.run("crash", journal=journal):
    if action == "shell":
        ws.run_shell("rm -rf src && mkdir -p a/b && echo 1 > a/b/one && echo 2 > two")
    else:
        ws.move_path("src", "lib/src")
os._exit(0)
"""


def crash(ws: Workspace, journal: goex.Journal, point: str, action: str, *extra: str) -> None:
    argv = [sys.executable, "-c", CRASH_AT, str(ws.root), str(ws.store.root), journal.url]
    done = subprocess.run([*argv, point, action, *extra], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr


@pytest.mark.parametrize("action", ["file", "shell"])
@pytest.mark.parametrize("point", ["mid-apply", "before-journal"])
def test_a_crash_after_the_effect_began_is_recovered_as_applied_and_undone_exactly(
    ws: Workspace, root: Path, journal: goex.Journal, point: str, action: str
) -> None:
    before = manifest(root)
    crash(ws, journal, point, action)
    assert manifest(root) != before  # the effect (or part of it) happened
    (pending,) = journal.steps_with_status(StepStatus.PENDING)
    assert pending.compensation is not None and pending.compensation.args["changes"]
    (outcome,) = goex.recover(journal)
    assert outcome.resolution == "applied", outcome.detail
    report = goex.rollback(pending.run_id, journal=journal)
    assert report.complete
    assert manifest(root) == before


def test_a_crash_while_keeping_held_changes_is_finished_by_keeping_again_or_discarding(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    command = "rm -rf src && mkdir -p a/b && echo 1 > a/b/one && echo 2 > two"
    with goex.run("held", journal=journal):
        first = ws.run_shell(command, tentative=True)
    crash(ws, journal, "mid-apply", "keep", first.step_id)
    half = manifest(root)
    assert half != before and journal.get_step(first.step_id).status is StepStatus.HELD
    discard(first.step_id, journal=journal)  # undoes exactly what the crashed keep applied
    assert manifest(root) == before

    with goex.run("held again", journal=journal):
        second = ws.run_shell(command, tentative=True)
    crash(ws, journal, "mid-apply", "keep", second.step_id)
    assert manifest(root) == half
    keep(second.step_id, journal=journal)  # finishes the crashed keep
    assert not (root / "src").exists() and (root / "a/b/one").read_text() == "1\n"
    assert (root / "two").read_text() == "2\n"


def test_scratch_layers_a_killed_goex_left_are_swept_on_the_next_start(
    ws: Workspace, root: Path, journal: goex.Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    from goex_tools.domains.fs import store as store_module
    from goex_tools.domains.fs import workspace as workspace_module

    monkeypatch.setattr(store_module, "SWEEP_AGE", 0.0)  # instead of waiting 10 s
    seconds = unique_seconds()
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING, str(root), str(ws.store.root), journal.url, seconds]
    )
    deadline = time.monotonic() + 30
    while not _sleeping(seconds) and time.monotonic() < deadline:
        time.sleep(0.05)
    (live,) = [p for p in ws.store.scratch.iterdir() if p.name.startswith("shell-")]
    workspace_module._swept.clear()
    Workspace(root, store=ws.store.root)  # another agent starts while the command runs
    assert live.is_dir()  # in use: left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _sleeping(seconds) and time.monotonic() < deadline:
        time.sleep(0.05)
    (ws.store.scratch / "blob-half-written").write_bytes(b"x")  # a copy killed midway
    workspace_module._swept.clear()
    Workspace(root, store=ws.store.root)  # the next start
    assert list(ws.store.scratch.iterdir()) == []


# A kill between making a temporary (a file, symlink or directory named .goex-<step>-...)
# and renaming it into place: recovery and rollback remove it and restore the tree exactly.
CRASH_AT_RENAME = """
import os, sys
import goex_tools as goex
from goex_tools.domains.fs import Workspace
root, store, journal, nth, action = sys.argv[1:6]
real_replace, calls = os.replace, []
def crashing_replace(src, dst, **kwargs):
    if str(src).startswith(".goex-"):
        calls.append(src)
        if len(calls) == int(nth):
            os._exit(9)
    real_replace(src, dst, **kwargs)
os.replace = crashing_replace
ws = Workspace(root, store=store)
if action == "undo":
    goex.rollback(sys.argv[6], journal=journal)
    os._exit(0)
with goex.run("crash", journal=journal):
    if action == "shell":
        ws.run_shell("rm -rf src && mkdir -p a/b && echo 1 > a/b/one && echo 2 > two")
    else:
        ws.write_file("a/b/new.txt", "new")
os._exit(0)
"""


def _temporaries(root: Path) -> list[str]:
    return [p for p in manifest(root) if ".goex-" in p]


@pytest.mark.parametrize(("action", "nth"), [("file", 1), ("file", 3), ("shell", 1), ("shell", 4)])
def test_a_kill_before_a_temporary_is_renamed_leaves_nothing_after_recovery(
    ws: Workspace, root: Path, journal: goex.Journal, action: str, nth: int
) -> None:
    before = manifest(root)
    argv = [sys.executable, "-c", CRASH_AT_RENAME, str(root), str(ws.store.root), journal.url]
    done = subprocess.run([*argv, str(nth), action], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert _temporaries(root)  # goex's own file, in the workspace
    (pending,) = journal.steps_with_status(StepStatus.PENDING)
    (outcome,) = goex.recover(journal)
    assert outcome.step_id == pending.id
    assert _temporaries(root) == []
    if outcome.resolution == "applied":
        assert goex.rollback(pending.run_id, journal=journal).complete
    assert manifest(root) == before


def test_a_kill_while_undoing_leaves_no_temporary_and_the_next_rollback_completes(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("undo", journal=journal) as run:
        ws.run_shell("rm -rf src empty && echo 2 > two")
    argv = [sys.executable, "-c", CRASH_AT_RENAME, str(root), str(ws.store.root), journal.url]
    done = subprocess.run([*argv, "3", "undo", run.id], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert _temporaries(root)
    goex.recover(journal)
    report = goex.rollback(run.id, journal=journal)
    assert report.complete and manifest(root) == before
