"""Journal faults are goex errors naming the journal and the way out, raised before the
action they concern: a full disk, a read-only file system, a lock held too long, a server
that refuses connections or stopped answering. The action does not run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from tests.support.fileops import create_file
from tests.support.processes import ENV, ROOT, python
from tests.support.proxy import FreezableProxy


def private_mounts() -> list[str]:
    """A command prefix giving its command a mount namespace of its own (mounts vanish with
    it): as root, or as an ordinary user inside a user namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-Urm"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespaces here: {probe.stderr.decode().strip()}")
    return prefix


FULL_OR_READ_ONLY = """
import json, subprocess, sys
import goex_tools as goex
from tests.support import fileops
mnt, target, fault = sys.argv[1:4]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt], check=True)
url = f"sqlite:///{mnt}/journal.db"
result = {"made": [], "trying": 0}
if fault == "read-only":  # a journal on a file system mounted read-only since
    goex.Journal(url).close()
    subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
try:
    with goex.run("faulty", journal=url):
        fileops.create_file(target + ".0")
        result["made"].append(0)
        with open(f"{mnt}/filler", "wb", buffering=0) as filler:  # fill the disk
            try:
                while True:
                    filler.write(b"x" * 4096)
            except OSError:
                pass
        for i in range(1, 200):
            result["trying"] = i
            fileops.create_file(f"{target}.{i}", "y" * 3000)
            result["made"].append(i)
except goex.GoexError as exc:
    result["error"] = [type(exc).__name__, str(exc)]
print(json.dumps(result))
"""


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_journal_on_a_full_or_read_only_disk_refuses_the_action(tmp_path: Path, fault: str) -> None:
    mnt, target = tmp_path / "mnt", tmp_path / "made"
    mnt.mkdir()
    command = [sys.executable, "-c", FULL_OR_READ_ONLY, str(mnt), str(target), fault]
    out = subprocess.run(
        [*private_mounts(), *command],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    kind, message = result["error"]
    assert kind == "JournalUnavailable", message
    assert f"goex journal sqlite:///{mnt}/journal.db" in message
    if fault == "full":
        assert "the disk is full" in message and "Free space there" in message
        assert "create_file did not run" in message
    else:
        assert "read-only" in message and result["made"] == []
    failed = result["trying"]
    assert not Path(f"{target}.{failed}").exists()  # the refused action did not run
    assert all(Path(f"{target}.{i}").exists() for i in result["made"])


IO_ERROR = """
set -eu
work=$1
mount -t tmpfs -o size=24m tmpfs "$work/backing"
truncate -s 32M "$work/backing/disk.img"
loop=$(losetup -f --show "$work/backing/disk.img")
trap 'umount "$work/mnt" 2>/dev/null || true; losetup -d "$loop"' EXIT
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$loop"
mount "$loop" "$work/mnt"
"$PYTHON" -c "$SCRIPT" "$work"
"""

IO_AGENT = """
import json, sys
import goex_tools as goex
from tests.support import fileops
work = sys.argv[1]
result = {"made": []}
try:
    with goex.run("io", journal=goex.Journal(f"sqlite:///{work}/mnt/journal.db", durable=True)):
        fileops.create_file(f"{work}/made.0")
        result["made"].append(0)
        with open(f"{work}/backing/filler", "wb", buffering=0) as filler:
            try:  # the loop device's file can grow no more: its writes fail (EIO)
                while True:
                    filler.write(b"x" * 65536)
            except OSError:
                pass
        for i in range(1, 100):
            result["trying"] = i
            fileops.create_file(f"{work}/made.{i}", "y" * 5000)
            result["made"].append(i)
except goex.GoexError as exc:
    result["error"] = [type(exc).__name__, str(exc)]
print(json.dumps(result))
"""


def test_journal_disk_io_error_is_a_goex_error_saying_what_ran(tmp_path: Path) -> None:
    """A real EIO: ext4 on a loop device whose backing file can no longer grow."""
    if os.geteuid() != 0 or not all(map(shutil.which, ("losetup", "mkfs.ext4", "unshare"))):
        pytest.skip("needs root, losetup and mkfs.ext4 (e2fsprogs) for a loop device")
    for name in ("backing", "mnt"):
        (tmp_path / name).mkdir()
    out = subprocess.run(
        ["unshare", "--mount", "sh", "-c", IO_ERROR, "io-error", str(tmp_path)],
        cwd=ROOT,
        env={**ENV, "PYTHON": sys.executable, "SCRIPT": IO_AGENT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0 and "losetup" in out.stderr:
        pytest.skip(f"no loop devices here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    kind, message = result["error"]
    assert kind == "JournalUnavailable" and "a disk I/O error" in message, message
    assert f"goex journal sqlite:///{tmp_path}/mnt/journal.db" in message
    failed = result["trying"]
    if "did not run" in message:  # refused before its effect
        assert not (tmp_path / f"made.{failed}").exists()
    else:  # its effect ran; the journal could not mark it applied and says so
        assert "ran, but the journal could not record that" in message
        assert "goex recover" in message and (tmp_path / f"made.{failed}").exists()


def test_journal_locked_too_long_refuses_the_action_but_reads_go_on(
    sqlite_journal_url: str, tmp_path: Path
) -> None:
    journal = goex.Journal(sqlite_journal_url, timeout=0.5)
    with goex.run("before", journal=journal):
        create_file(str(tmp_path / "before.txt"))
    holder = sqlite3.connect(sqlite_journal_url.removeprefix("sqlite:///"), isolation_level=None)
    with goex.run("blocked", journal=journal):
        holder.execute("BEGIN IMMEDIATE")  # another process's writer, holding the write lock
        try:
            with pytest.raises(goex.JournalUnavailable) as err:
                create_file(str(tmp_path / "blocked.txt"))
            # A writing process's own reads take no write lock either (timeout 0.5 s).
            assert [r.name for r in journal.list_runs()] == ["blocked", "before"]
            # Reading takes no write lock: the CLI lists runs while the writer holds it.
            listed = subprocess.run(
                [sys.executable, "-m", "goex_tools.cli", "runs", "--json"],
                cwd=ROOT,
                env={**ENV, "GOEX_JOURNAL_URL": sqlite_journal_url, "GOEX_JOURNAL_TIMEOUT": "1"},
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    message = str(err.value)
    assert "held its lock for more than 0.5 s" in message and "GOEX_JOURNAL_TIMEOUT" in message
    assert "create_file did not run" in message and not (tmp_path / "blocked.txt").exists()
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["blocked", "before"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_journal_server_is_a_goex_error_and_nothing_runs(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/goex"
    with pytest.raises(goex.JournalUnavailable, match="unreachable") as err:
        goex.Journal(url, timeout=5)
    assert "127.0.0.1" in str(err.value) and "Check that its server runs" in str(err.value)
    with pytest.raises(goex.JournalUnavailable), goex.run("never", journal=url):
        create_file(str(tmp_path / "never.txt"))
    assert not (tmp_path / "never.txt").exists()


def proxied(pg_url: str, proxy: FreezableProxy) -> str:
    return (
        sa.engine.make_url(pg_url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )


def test_hung_journal_server_fails_the_next_action_within_the_timeout(
    pg_url: str, tmp_path: Path
) -> None:
    target = sa.engine.make_url(pg_url)
    with FreezableProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        journal = goex.Journal(proxied(pg_url, proxy), timeout=2)
        with pytest.raises(goex.JournalUnavailable) as err:  # noqa: SIM117
            with goex.run("hangs", journal=journal):
                create_file(str(tmp_path / "one.txt"))
                proxy.freeze()  # the server stops answering (SIGSTOP)
                started = time.monotonic()
                create_file(str(tmp_path / "two.txt"))
        waited = time.monotonic() - started
        assert "no answer within 2 s" in str(err.value) and "did not run" in str(err.value)
        assert waited < 30  # bounded by the timeout, not hung (generous: a loaded machine)
        assert (tmp_path / "one.txt").exists() and not (tmp_path / "two.txt").exists()

        with pytest.raises(goex.JournalUnavailable, match="no answer within 2 s"):
            goex.Journal(proxied(pg_url, proxy), timeout=2)  # connecting to it hangs too

        proxy.thaw()
        runs = goex.Journal(proxied(pg_url, proxy), timeout=2).list_runs()
        assert [r.name for r in runs] == ["hangs"]


def test_journal_server_hung_in_a_rollback_is_a_goex_error_then_resumes(
    pg_url: str, tmp_path: Path
) -> None:
    from tests.support import fileops

    target = sa.engine.make_url(pg_url)
    with FreezableProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        journal = goex.Journal(proxied(pg_url, proxy), timeout=2)
        with goex.run("to undo", journal=journal) as run:
            create_file(str(tmp_path / "first.txt"))
            fileops.create_with_hooked_undo(str(tmp_path / "middle.txt"))
            create_file(str(tmp_path / "last.txt"))
        fileops.UNDO_HOOKS.append(proxy.freeze)  # the server stops while an undo runs
        with pytest.raises(goex.JournalUnavailable, match="no answer within 2 s"):
            goex.rollback(run.id, journal=journal)
        assert not (tmp_path / "middle.txt").exists() and (tmp_path / "first.txt").exists()
        proxy.thaw()
        # Whether or not the server ran the mark-and-claim it was sent, the journal is true:
        # the undone step is compensated or still claimed; the next one is claimed or not.
        first, middle, last = journal.steps(run.id)
        assert last.status is goex.StepStatus.COMPENSATED
        assert middle.status in (goex.StepStatus.COMPENSATING, goex.StepStatus.COMPENSATED)
        assert first.status in (goex.StepStatus.APPLIED, goex.StepStatus.COMPENSATING)
        released = goex.recover(journal, include_live=True)  # a person: that rollback is over
        assert {o.resolution for o in released} <= {"released"}
        report = goex.rollback(run.id, journal=journal)
        assert report.complete and sorted(p.name for p in tmp_path.iterdir()) == []


SCHEMA_RACE = """
import sys, time
from pathlib import Path
import goex_tools as goex
url, go = sys.argv[1:3]
while not Path(go).exists():
    time.sleep(0.005)
goex.Journal(url).close()
print("ok")
"""


@pytest.mark.postgres
def test_eight_processes_opening_a_fresh_postgres_journal_all_succeed(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for round_ in range(2):
        url = request.getfixturevalue("pg_url") if round_ == 0 else _fresh_database(request)
        go = tmp_path / f"go-{round_}"
        procs = [python(SCHEMA_RACE, url, str(go), stdout=-1, stderr=-1) for _ in range(8)]
        time.sleep(1.5)  # let every process import goex and wait at the line
        go.write_text("")
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, [err for _, err in results]
        assert goex.Journal(url).list_runs() == []


def _fresh_database(request: pytest.FixtureRequest) -> str:
    import uuid

    from tests.conftest import POSTGRES_URL

    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"goex_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    request.addfinalizer(drop)
    return sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(False)


def test_journal_under_a_file_is_a_goex_error_and_nothing_runs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a directory\n")
    url = f"sqlite:///{tmp_path}/notes.txt/journal.db"
    with pytest.raises(goex.JournalUnavailable, match="cannot create a goex journal at"):
        goex.Journal(url)
    with pytest.raises(goex.JournalUnavailable), goex.run("never", journal=url):
        create_file(str(tmp_path / "never.txt"))
    assert not (tmp_path / "never.txt").exists()
    assert (tmp_path / "notes.txt").read_text() == "a file, not a directory\n"
