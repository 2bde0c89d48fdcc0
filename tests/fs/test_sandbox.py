"""The sandbox backends: which work here, the optional Docker backend, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools.domains.fs import Workspace
from goex_tools.sandbox import (
    BACKENDS,
    SandboxUnavailable,
    available_backends,
    get_sandbox,
)
from tests.fs.conftest import manifest, require_engine, seed


def test_available_backends_finds_all_three_working_on_this_machine() -> None:
    require_engine()
    found = available_backends()
    assert found == {"bwrap": None, "docker": None, "none": None}  # all work on this machine
    assert set(found) == set(BACKENDS)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sandbox 'firejail'; choose one of"):
        get_sandbox("firejail")


def test_docker_backend_runs_a_command_over_the_overlay(
    root: Path, tmp_path: Path, journal: goex.Journal
) -> None:
    require_engine()
    ws = Workspace(root, store=tmp_path / "store", sandbox="docker")
    before = manifest(root)
    with goex.run("docker", journal=journal) as run:
        result = ws.run_shell("sed -i s/alpha/docker/ README.md && rm -rf src")
    assert result.exit_code == 0, result.stderr
    assert "docker" in (root / "README.md").read_text()
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_a_workspace_path_overlay_options_cannot_express_is_refused_clearly(
    tmp_path: Path, journal: goex.Journal
) -> None:
    root = tmp_path / "odd,name"
    root.mkdir()
    seed(root)
    before = manifest(root)
    ws = Workspace(root, store=tmp_path / "store")
    with goex.run("odd", journal=journal), pytest.raises(SandboxUnavailable, match="contains"):
        ws.run_shell("rm -rf src")
    assert manifest(root) == before


@pytest.mark.parametrize("backend", ["bwrap", "none"])
def test_an_overlay_that_cannot_be_mounted_is_an_error_not_a_command_result(
    tmp_path: Path, journal: goex.Journal, backend: str
) -> None:
    """overlayfs refuses /proc as a lower layer: the mount's exit code and message must not be
    passed off as the command's."""
    ws = Workspace("/proc/sys", store=tmp_path / "store", sandbox=backend)
    with (
        goex.run("unmountable", journal=journal) as run,
        pytest.raises(SandboxUnavailable, match="could not be mounted, so the command did not"),
    ):
        ws.run_shell("echo ran")
    (step,) = journal.steps(run.id)
    assert step.status is goex.StepStatus.FAILED


def test_a_bwrap_set_up_failure_is_an_error_not_a_command_result(tmp_path: Path) -> None:
    """bwrap cannot hide a directory that does not exist in the read-only system view: it
    fails before the command starts, and its exit code must not pass for the command's."""
    from goex_tools.sandbox import Limits
    from goex_tools.sandbox.overlay import make_layers, remove_layers

    (tmp_path / "ws").mkdir()
    layers = make_layers(
        tmp_path / "ws", tmp_path / "scratch", hidden=[Path("/usr/goex-no-such-dir/inner")]
    )
    try:
        with pytest.raises(SandboxUnavailable, match=r"bwrap could not set up the sandbox.*mkdir"):
            get_sandbox("bwrap").run("touch ran", layers, Limits())
        assert list(layers.upper.iterdir()) == []
    finally:
        remove_layers(layers)


def test_volatile_overlay_is_used_only_on_kernels_that_have_it() -> None:
    from goex_tools.sandbox.overlay import has_volatile

    assert has_volatile("6.18.44-fc-v769") and has_volatile("5.10.0-28-amd64")
    assert not has_volatile("5.9.16") and not has_volatile("4.19.0-26-amd64")
    assert not has_volatile("unknown")


@pytest.mark.parametrize("backend", ["bwrap", "none"])
def test_a_command_that_syncs_its_writes_succeeds_and_is_captured(
    root: Path, tmp_path: Path, journal: goex.Journal, backend: str
) -> None:
    """The overlay skips syncs of its scratch upper layer: fsync and sync still succeed."""
    ws = Workspace(root, store=tmp_path / "store", sandbox=backend)
    before = manifest(root)
    with goex.run("sync", journal=journal) as run:
        result = ws.run_shell(
            "printf synced > new.txt && dd if=new.txt of=copy.txt conv=fsync 2>/dev/null && sync"
        )
    assert result.exit_code == 0, result.stderr
    assert (root / "copy.txt").read_text() == "synced"
    assert {c.path for c in result.changes} == {"new.txt", "copy.txt"}
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_without_pidfds_a_command_still_ends_promptly_and_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the kernel has no pidfd_open, exits are polled: results are the same."""
    import os

    from goex_tools.sandbox import Limits
    from goex_tools.sandbox.process import run_capped

    monkeypatch.delattr(os, "pidfd_open")
    done = run_capped(["sh", "-c", "echo hi; echo there >&2; exit 4"], Limits())
    assert (done.exit_code, done.stdout, done.stderr, done.timed_out) == (
        4,
        "hi\n",
        "there\n",
        False,
    )
    assert done.seconds < 2
    slow = run_capped(["sh", "-c", "echo started; sleep 30"], Limits(timeout=0.3))
    assert slow.timed_out and slow.exit_code is None and slow.stdout == "started\n"
    assert slow.seconds < 5
