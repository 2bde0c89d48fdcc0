"""Owner tags and liveness: a process is identified by boot id, pid namespace, pid and start
time, and a process goex cannot see is `unknown`, never `alive` for ever."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from goex_tools.owner import Liveness, liveness, owner_tag, parse

ROOT = Path(__file__).resolve().parents[1]
TAG_OF_A_CHILD = "from goex_tools.owner import owner_tag; print(owner_tag(), flush=True)"


def tag_of(*command: str) -> str:
    out = subprocess.run(
        [*command, sys.executable, "-c", TAG_OF_A_CHILD],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def in_new_pid_namespace() -> list[str]:
    """A command prefix running its command as pid 1 of a new pid namespace (a container)."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    probe = subprocess.run(
        ["unshare", *user, "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no pid namespaces here: {probe.stderr.decode().strip()}")
    return ["unshare", *user, "--pid", "--fork", "--mount-proc"]


def test_owner_tag_names_boot_pid_namespace_pid_and_start_time() -> None:
    owner = parse(owner_tag())
    assert owner is not None and owner.complete and owner.pid == os.getpid()
    assert owner.boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert owner.pidns == os.stat("/proc/self/ns/pid").st_ino


def test_owner_of_this_process_is_alive() -> None:
    assert liveness(owner_tag()).liveness is Liveness.ALIVE


def test_owner_that_exited_is_dead() -> None:
    tag = tag_of()
    assert liveness(tag).liveness is Liveness.DEAD


def test_owner_whose_pid_was_reused_is_dead() -> None:
    """Our own pid with another start time: the pid now belongs to another process."""
    mine = parse(owner_tag())
    assert mine is not None
    reused = owner_tag().replace(f"start={mine.start}", f"start={mine.start - 1}")
    verdict = liveness(reused)
    assert verdict.liveness is Liveness.DEAD and "another process" in verdict.reason


def test_owner_that_is_a_zombie_is_dead() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", TAG_OF_A_CHILD], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    tag = child.stdout.readline().strip()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)  # exited, not reaped yet: a zombie
    try:
        assert liveness(tag).liveness is Liveness.DEAD
    finally:
        child.wait()


def test_owner_tags_of_an_older_goex_are_unknown_not_alive() -> None:
    """host:pid alone cannot say which process it was, even for a pid that runs now."""
    import socket

    verdict = liveness(f"{socket.gethostname()}:1")
    assert verdict.liveness is Liveness.UNKNOWN and "cannot be identified" in verdict.reason


def test_owner_under_another_boot_is_unknown() -> None:
    mine = parse(owner_tag())
    assert mine is not None
    other = owner_tag().replace(mine.boot, "00000000-0000-0000-0000-000000000000")
    assert liveness(other).liveness is Liveness.UNKNOWN


def test_owner_that_was_pid_1_of_a_dead_container_is_dead_seen_from_the_host() -> None:
    prefix = in_new_pid_namespace()
    tag = tag_of(*prefix)
    owner = parse(tag)
    assert owner is not None and owner.pid == 1 and owner.pidns != parse(owner_tag()).pidns  # type: ignore[union-attr]
    if os.geteuid() != 0 or parse(owner_tag()).pidns != 0xEFFFFFFC:  # type: ignore[union-attr]
        assert liveness(tag).liveness is Liveness.UNKNOWN  # cannot see every process
    else:
        verdict = liveness(tag)
        assert verdict.liveness is Liveness.DEAD, verdict.reason


def test_owner_that_is_pid_1_of_a_running_container_is_alive() -> None:
    prefix = in_new_pid_namespace()
    container = subprocess.Popen(
        [*prefix, sys.executable, "-c", TAG_OF_A_CHILD + "; import time; time.sleep(60)"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert container.stdout is not None
        tag = container.stdout.readline().strip()
        assert parse(tag).pid == 1  # type: ignore[union-attr]
        expected = Liveness.ALIVE if os.geteuid() == 0 else Liveness.UNKNOWN
        assert liveness(tag).liveness is expected
    finally:
        container.kill()
        container.wait()


def test_owner_of_a_dead_container_seen_from_another_container_is_unknown() -> None:
    prefix = in_new_pid_namespace()
    tag = tag_of(*prefix)
    check = (
        "import json, sys; from goex_tools.owner import liveness; "
        "v = liveness(sys.argv[1]); print(json.dumps([v.liveness.value, v.reason]))"
    )
    out = subprocess.run(
        [*prefix, sys.executable, "-c", check, tag],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer, reason = json.loads(out.stdout)
    assert answer == "unknown" and "cannot see into" in reason
