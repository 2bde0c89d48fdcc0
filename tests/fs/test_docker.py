"""The docker backend on a real engine: its image, its output, and nothing left behind.

What it confines is tested with the bwrap suite's own probes (tests/fs/test_hostile.py and
tests/fs/test_shell.py run each of them in both backends); these are the docker-only parts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import goex_tools as goex
from goex_tools import StepStatus
from goex_tools.domains.fs import Workspace
from goex_tools.errors import InvalidArgument
from goex_tools.sandbox import DEFAULT_IMAGE, Limits, SandboxUnavailable
from goex_tools.sandbox import container as engine_side
from goex_tools.sandbox.container import GRACE, OWNER_LABEL, engine, owner
from tests.fs.conftest import manifest, require_engine

TOOL_IMAGE = "goex-test-toolchain:1"


@pytest.fixture(scope="module")
def api() -> Any:
    require_engine()
    return engine()


@pytest.fixture
def docker_ws(root: Path, tmp_path: Path, api: Any) -> Workspace:
    return Workspace(root, store=tmp_path / "store", sandbox="docker")


def _mine(api: Any) -> list[str]:
    """Containers this process made that still exist."""
    found = api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner()}"})
    return [c["Id"] for c in found]


def refused_untouched(ws: Workspace, journal: goex.Journal, why: str) -> None:
    """A command the backend cannot run: SandboxUnavailable saying `why`, its step failed,
    and the workspace as it was."""
    before = manifest(ws.root)
    with goex.run("refused", journal=journal) as run, pytest.raises(SandboxUnavailable, match=why):
        ws.run_shell("echo ran > ran.txt; rm -rf src")
    assert manifest(ws.root) == before
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED


def _mounts_below(path: Path) -> list[str]:
    text = Path("/proc/self/mountinfo").read_text()
    return [line.split(" ")[4] for line in text.splitlines() if str(path) in line.split(" ")[4]]


@pytest.fixture(scope="module")
def tool_image(api: Any) -> Iterator[str]:
    """An image of the user's own: the default one plus a tool in a directory of its own,
    which the image's PATH names (made offline, by committing a container)."""
    made = api.create_container(
        DEFAULT_IMAGE,
        [
            "sh",
            "-c",
            "mkdir -p /opt/tool && printf '#!/bin/sh\\necho tool: $*\\n' > "
            "/opt/tool/greet && chmod 755 /opt/tool/greet",
        ],
    )
    try:
        api.start(made)
        assert api.wait(made, timeout=60)["StatusCode"] == 0
        path = "PATH=/opt/tool:/usr/local/bin:/usr/bin:/bin"
        api.commit(
            made["Id"], repository=TOOL_IMAGE.split(":")[0], tag="1", changes=[f"ENV {path}"]
        )
    finally:
        api.remove_container(made, force=True)
    yield TOOL_IMAGE
    api.remove_image(TOOL_IMAGE, force=True)


def test_docker_runs_commands_in_the_image_the_workspace_names(
    root: Path, tmp_path: Path, journal: goex.Journal, tool_image: str
) -> None:
    ws = Workspace(root, store=tmp_path / "store", sandbox="docker", image=tool_image)
    before = manifest(root)
    with goex.run("image", journal=journal) as run:
        result = ws.run_shell("greet hello > greeting.txt && cat greeting.txt")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "tool: hello\n"  # found on the image's own PATH
    step = journal.get_step(result.step_id)
    assert step.effect["predicted"]["image"] == tool_image
    assert any(tool_image in note for note in step.notes)
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_docker_default_image_has_no_such_tool(docker_ws: Workspace, journal: goex.Journal) -> None:
    with goex.run("default", journal=journal):
        result = docker_ws.run_shell(
            "greet hello; cat /etc/debian_version; python3 -c 'import json'"
        )
    assert result.exit_code == 0 and "greet: not found" in result.stderr
    assert result.stdout.startswith("12.")  # Debian bookworm, built offline


def test_docker_a_missing_image_is_a_clear_error_and_nothing_runs(
    root: Path, tmp_path: Path, journal: goex.Journal, api: Any
) -> None:
    ws = Workspace(root, store=tmp_path / "store", sandbox="docker", image="goex-no-such:image")
    assert "goex-no-such:image is not in the engine" in str(ws.sandbox.problem())
    refused_untouched(ws, journal, "goex-no-such:image is not in the engine")
    assert _mine(api) == [] and _mounts_below(tmp_path) == []


def test_an_image_is_only_for_the_docker_sandbox(root: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="an image is for the docker sandbox"):
        Workspace(root, store=tmp_path / "store", sandbox="bwrap", image=DEFAULT_IMAGE)


def test_docker_output_arrives_whole_and_separated(
    docker_ws: Workspace, journal: goex.Journal
) -> None:
    """The exec stream is read to its end every time (podman has lost a log's last lines)."""
    expected = "".join(f"{n}\n" for n in range(1, 3001))
    with goex.run("output", journal=journal):
        for _ in range(5):
            result = docker_ws.run_shell("seq 1 3000; echo last >&2; printf tail; exit 4")
            assert result.exit_code == 4
            assert result.stdout == expected + "tail" and result.stderr == "last\n"


def test_docker_leaves_no_container_and_no_mount_behind(
    docker_ws: Workspace, tmp_path: Path, journal: goex.Journal, api: Any
) -> None:
    slow = Limits(timeout=1, file_size=4096)
    ws = Workspace(docker_ws.root, store=tmp_path / "store", sandbox="docker", limits=slow)
    with goex.run("leftovers", journal=journal):
        ws.run_shell("sleep 30 & echo ok")
        with pytest.raises(goex.GoexError):
            ws.run_shell("sleep 30")  # past its time
        with pytest.raises(goex.GoexError):
            ws.run_shell("head -c 100000 /dev/zero > big")  # past its file size
    assert _mine(api) == []
    assert _mounts_below(tmp_path) == []


def test_docker_commands_cannot_signal_or_enter_the_first_process(
    docker_ws: Workspace, journal: goex.Journal
) -> None:
    with goex.run("init", journal=journal):
        result = docker_ws.run_shell("kill -9 1; ls /proc/1/root/ /proc/1/cwd/; echo alive")
    assert "Operation not permitted" in result.stderr
    assert "Permission denied" in result.stderr
    assert result.stdout == "alive\n"


def test_docker_sees_no_host_sys_and_only_an_empty_run_and_tmp(
    docker_ws: Workspace, journal: goex.Journal
) -> None:
    """/run, /tmp and /var/tmp are its own and empty (the engine may add empty directories;
    the workspace, under /tmp here, is another mount);
    /sys holds only the container's own cgroup, read-only."""
    probe = "find /run /tmp /var/tmp -xdev ! -type d; ls /sys /sys/fs; ls /sys/class; touch /sys/x"
    with goex.run("view", journal=journal):
        result = docker_ws.run_shell(probe)
    assert result.stdout.split() == ["/sys:", "fs", "/sys/fs:", "cgroup"]
    assert "ls: cannot access '/sys/class': No such file or directory" in result.stderr
    assert "touch: cannot touch '/sys/x': Read-only file system" in result.stderr


KILLED_RUN = """
import sys
from goex_tools import Journal, run
from goex_tools.domains.fs import Workspace
from goex_tools.sandbox import Limits
ws = Workspace(sys.argv[1], store=sys.argv[2], sandbox="docker", limits=Limits(timeout=1))
with run("killed", journal=Journal(sys.argv[3])):
    ws.run_shell("echo started > started.txt; sleep " + sys.argv[4])
"""


def test_docker_leftovers_of_a_killed_goex_end_and_are_swept_on_the_next_start(
    root: Path, tmp_path: Path, api: Any
) -> None:
    """goex killed while its command runs: the container ends itself (and every process in
    it) a little past the command's time limit; the stopped container and the overlay
    mounted on the host are removed by the next goex process."""
    seconds = f"{4000 + os.getpid() % 1000}.25"
    store = tmp_path / "store"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_RUN,
            str(root),
            str(store),
            f"sqlite:///{tmp_path}/j.db",
            seconds,
        ],
        env=os.environ | {"PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 60
    while not _sleeping(seconds) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sleeping(seconds), "the command never started"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = api.containers(filters={"label": OWNER_LABEL})
    assert any(c["Labels"][OWNER_LABEL].split(":")[1] == str(child.pid) for c in left)
    assert _mounts_below(store) != []
    deadline = time.monotonic() + 1 + GRACE + 20
    while _sleeping(seconds) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _sleeping(seconds), "the command outlived its container's end"

    engine_side._swept.discard(api.base_url)  # this process's first run after the crash
    ws = Workspace(root, store=store, sandbox="docker")
    with goex.run("after", journal=goex.Journal(f"sqlite:///{tmp_path}/j2.db")):
        ws.run_shell("true")
    assert ws.store.sweep_scratch(min_age=0) != []
    left = api.containers(all=True, filters={"label": OWNER_LABEL})
    assert not any(c["Labels"][OWNER_LABEL].split(":")[1] == str(child.pid) for c in left)
    assert not _sleeping(seconds)
    assert _mounts_below(store) == []
    assert not (root / "started.txt").exists()


def _sleeping(seconds: str) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and f"sleep {seconds}"
                in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ):
                return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="module")
def elsewhere_engine(api: Any) -> Iterator[str]:
    """A podman service in a mount namespace of its own: it cannot see the host's mounts."""
    if shutil.which("podman") is None:
        pytest.skip("needs podman (scripts/start-container-engine.sh installs it)")
    run_dir = Path("/run/goex-podman-elsewhere")
    run_dir.mkdir(exist_ok=True)
    sock = run_dir / "podman.sock"
    sock.unlink(missing_ok=True)
    settings = Path("/var/lib/goex-engine/containers.conf")
    env = os.environ | ({"CONTAINERS_CONF": str(settings)} if settings.exists() else {})
    service = subprocess.Popen(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "podman",
            "system",
            "service",
            "--time=0",
            f"unix://{sock}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import docker

        deadline = time.monotonic() + 30
        while True:
            try:
                docker.DockerClient(base_url=f"unix://{sock}", timeout=5).ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"unix://{sock}"
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_docker_refuses_an_engine_that_cannot_see_its_overlay(
    root: Path,
    tmp_path: Path,
    journal: goex.Journal,
    elsewhere_engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the check, the command would run in an empty directory, change nothing
    goex sees, and its step would say so."""
    monkeypatch.setenv("DOCKER_HOST", elsewhere_engine)
    ws = Workspace(root, store=tmp_path / "store", sandbox="docker")
    refused_untouched(ws, journal, "does not see goex's overlay mount")
    assert _mounts_below(tmp_path) == []


def test_docker_shows_a_directory_whose_name_a_bind_string_would_split(
    root: Path, tmp_path: Path, journal: goex.Journal, api: Any
) -> None:
    """`src:dst:mode` strings would read `/x/a:/etc:rw` as a bind of /x/a onto /etc."""
    odd = tmp_path / "shown" / "a:/etc:rw"
    odd.mkdir(parents=True)
    (odd / "f.txt").write_text("shown\n")
    limits = Limits(show=[str(odd)])
    ws = Workspace(root, store=tmp_path / "store", sandbox="docker", limits=limits)
    with goex.run("colon", journal=journal):
        result = ws.run_shell(f"cat '{odd}/f.txt'; touch '{odd}/new' /etc/new")
    assert result.stdout == "shown\n"
    assert result.stderr.count("Read-only file system") == 2
    assert sorted(p.name for p in odd.iterdir()) == ["f.txt"]
