"""run_shell: real commands over a real overlay in each confining sandbox (bubblewrap, a
container on a real engine), then exact rollback."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import StepStatus
from goex_tools.domains.fs import (
    CommandTimedOut,
    FsError,
    UnsupportedFile,
    Workspace,
    WorkspaceChanged,
    diff,
)
from goex_tools.redaction import redactor
from goex_tools.sandbox import Limits
from tests.fs.conftest import git, git_state, manifest

FIXED_DATES = "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z"

COMMANDS = {
    "sed": "sed -i 's/alpha/gamma/' README.md src/pkg/mod.py",
    "rm_rf": "rm -rf src empty locked",
    "mv": "mv src source && mv README.md docs.md && mv empty source/empty",
    "chmod": "chmod 700 run.sh && chmod 640 README.md && chmod 711 src",
    "ln_s": "ln -s src/main.py entry && ln -sfn README.md link-to-readme && ln -s x/y loop",
    "tar_x": "mkdir out && tar xf bundle.tar -C out && tar xf bundle.tar",
    "mixed": "rm -rf src && echo text > src && mkdir empty/sub && printf 'b\\0' > empty/sub/b "
    "&& rm dangling && mkdir dangling",
    "root_mode": "chmod 700 . && touch top.txt",
    "replace_dir": "rm -rf src && mkdir -p src/pkg && echo new > src/pkg/mod.py",  # opaque dir
    "readonly_dir": "sed -i s/alpha/ro/ src/pkg/mod.py && chmod 555 src/pkg src",
    "odd_names": "printf x > \"$(printf 'bad\\377name')\" && mkdir 'sp ace' && "
    "echo n > 'sp ace/new\nline'",
}


@pytest.fixture
def ws(root: Path, tmp_path: Path, backend: str) -> Workspace:
    """The seeded workspace, its commands run in each confining backend in turn (a test
    parametrized on `backend` picks its own)."""
    return Workspace(root, store=tmp_path / "store", sandbox=backend)


def reference(root: Path, tmp_path: Path, command: str) -> dict[str, object]:
    """The manifest the command produces when run directly on a copy (no goex, no sandbox)."""
    copy = tmp_path / "reference"
    shutil.copytree(root, copy, symlinks=True)
    subprocess.run(["sh", "-c", command], cwd=copy, check=True)
    return manifest(copy)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_effect_is_exact_and_rollback_restores_the_tree(
    ws: Workspace, root: Path, tmp_path: Path, journal: goex.Journal, name: str
) -> None:
    command = COMMANDS[name]
    before = manifest(root)
    expected = reference(root, tmp_path, command)
    with goex.run(name, journal=journal) as run:
        result = ws.run_shell(command)
    assert result.exit_code == 0, result.stderr
    assert manifest(root) == expected
    step = journal.get_step(result.step_id)
    assert step.status is StepStatus.APPLIED
    assert step.effect["changes"] == [c.model_dump() for c in result.changes]
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


@pytest.mark.parametrize("backend", ["bwrap"])  # the default image has no git
def test_git_commit_in_a_repository_workspace_is_undone_with_its_history(
    ws: Workspace, git_root: Path, journal: goex.Journal
) -> None:
    before, before_git = manifest(git_root), git_state(git_root)
    command = (
        f"sed -i s/alpha/delta/ README.md && git add README.md && "
        f"{FIXED_DATES} git commit -q -m agent && git checkout -q -b agent-branch && "
        f"echo more > more.txt && git add more.txt && {FIXED_DATES} git commit -q -m more"
    )
    with goex.run("git", journal=journal) as run:
        result = ws.run_shell(command)
    assert result.exit_code == 0, result.stderr
    assert git(git_root, "log", "--format=%s", "agent-branch").split() == [
        "more",
        "agent",
        "initial",
    ]
    assert git(git_root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "agent-branch"
    assert any(c.path.startswith(".git/objects/") for c in result.changes)
    goex.rollback(run.id, journal=journal)
    assert manifest(git_root) == before
    assert git_state(git_root) == before_git


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside the workspace and outside /tmp (which the sandbox replaces)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="goex-outside-"))
    yield path
    shutil.rmtree(path)


def test_writes_outside_the_workspace_are_stopped(
    ws: Workspace, root: Path, tmp_path: Path, outside: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    command = (
        f"echo pwned > {outside}/planted; echo pwned > ../planted; touch /usr/planted; "
        f"echo private > /tmp/goex-planted; cat /tmp/goex-planted; "
        f"echo shm > /dev/shm/goex-planted; echo sys > /sys/kernel/goex-planted"
    )
    with goex.run("escape", journal=journal):
        result = ws.run_shell(command)
    assert result.stderr.count("Read-only file system") == 1  # /usr
    assert f"{outside}/planted: Directory nonexistent" in result.stderr  # not in the view
    assert "/sys/kernel/goex-planted: Directory nonexistent" in result.stderr
    assert not Path("/dev/shm/goex-planted").exists()  # the sandbox has its own /dev
    assert result.stdout == "private\n"  # /tmp is the sandbox's own tmpfs
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "planted").exists() and not Path("/usr/planted").exists()
    assert not Path("/tmp/goex-planted").exists()
    assert manifest(root) == before and result.changes == []


@pytest.fixture
def http_server(tmp_path: Path) -> tuple[str, list[str]]:
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"reached")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits  # type: ignore[misc]
    server.shutdown()


def fetch(url: str, path: str) -> str:
    """A GET every sandbox can send: bash's /dev/tcp (curl is not in the default image)."""
    port = url.rsplit(":", 1)[1]
    request = f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3"
    return f'bash -c "exec 3<>/dev/tcp/127.0.0.1/{port} && {request} && cat <&3"'


def test_network_is_cut_unless_allowed_and_then_noted(
    ws: Workspace, journal: goex.Journal, http_server: tuple[str, list[str]]
) -> None:
    url, hits = http_server
    with goex.run("net", journal=journal):
        cut = ws.run_shell(fetch(url, "/blocked"))
        allowed = ws.run_shell(fetch(url, "/allowed"), network=True)
    assert cut.exit_code != 0 and "/dev/tcp/127.0.0.1" in cut.stderr
    assert allowed.exit_code == 0 and allowed.stdout.endswith("\r\n\r\nreached")
    assert hits == ["/allowed"]
    step = journal.get_step(allowed.step_id)
    assert step.effect["predicted"]["network"] is True
    assert any("cannot be undone" in note for note in step.notes)
    assert journal.get_step(cut.step_id).effect["predicted"] == {
        "workspace": str(ws.root),
        "paths": [],
        "command": fetch(url, "/blocked"),
        "sandbox": ws.sandbox.name,
        **({"image": "goex-sandbox:bookworm"} if ws.sandbox.name == "docker" else {}),
        "network": False,
        "limits": {"memory": 512 << 20, "processes": 256, "file_size": 1 << 30, "cpu_time": 60.0},
    }


def test_timeout_kills_the_command_and_discards_its_changes(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("slow", journal=journal) as run, pytest.raises(CommandTimedOut, match=r"0\.5 s"):
        ws.run_shell("echo partial > partial.txt; echo started; sleep 30", timeout=0.5)
    assert manifest(root) == before
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and "CommandTimedOut" in (step.error or "")
    assert list((ws.store.root / "scratch").iterdir()) == []


def test_a_finished_commands_scratch_layers_are_removed_after_it_returns(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    from goex_tools.sandbox.overlay import wait_for_removals

    with goex.run("scratch", journal=journal):
        for n in range(3):
            ws.run_shell(f"mkdir -p d{n}/e && echo {n} > d{n}/e/f && sed -i s/a/{n}/ README.md")
    wait_for_removals()
    assert list((ws.store.root / "scratch").iterdir()) == []
    assert (root / "d2" / "e" / "f").read_text() == "2\n"


def test_output_is_capped_and_exit_codes_and_stderr_are_returned(
    root: Path, tmp_path: Path, journal: goex.Journal, backend: str
) -> None:
    limits = Limits(output_limit=1000)
    ws = Workspace(root, store=tmp_path / "store", limits=limits, sandbox=backend)
    with goex.run("loud", journal=journal):
        result = ws.run_shell("yes goex | head -c 100000; echo oops >&2; exit 7")
    assert result.exit_code == 7 and result.stderr == "oops\n"
    assert result.stdout_truncated and result.stdout.startswith("goex\n" * 200)
    assert len(result.stdout) < 1100


def test_a_command_flooding_both_pipes_is_read_to_the_end_without_blocking(
    ws: Workspace, journal: goex.Journal
) -> None:
    """Far more than a pipe holds on stdout and stderr at once, interleaved: both are read
    as they fill (a reader stuck on one would leave the command blocked on the other)."""
    flood = "i=0; while [ $i -lt 20000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"
    with goex.run("flood", journal=journal):
        result = ws.run_shell(f"{flood}; exit 3", timeout=60)
    assert result.exit_code == 3
    assert result.stdout_truncated and result.stderr_truncated
    assert result.stdout.startswith("out0\nout1\nout2\n")
    assert result.stderr.startswith("err0\nerr1\nerr2\n")


def _processes_running(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def unique_seconds() -> str:
    """A `sleep` duration no concurrent test run on this machine uses, to find its processes."""
    return f"{3000 + random.random() * 1000:.6f}"


def test_processes_left_running_are_killed(ws: Workspace, journal: goex.Journal) -> None:
    one, two = unique_seconds(), unique_seconds()
    with goex.run("leftover", journal=journal):
        result = ws.run_shell(f"(sleep {one} &) ; nohup sleep {two} >/dev/null 2>&1 & echo done")
    assert result.stdout == "done\n"
    assert _processes_running(f"sleep {one}") == _processes_running(f"sleep {two}") == []


def test_secret_values_never_reach_the_output_or_the_journal(
    ws: Workspace, journal: goex.Journal
) -> None:
    secret = "s3cr3t-" + "x9" * 8
    redactor.add(secret)
    with goex.run("secret", journal=journal):
        result = ws.run_shell(f"echo token={secret}; echo {secret} >&2")
    assert secret not in result.stdout + result.stderr and "[REDACTED]" in result.stdout
    assert secret not in journal.get_step(result.step_id).model_dump_json()


def test_undo_of_a_middle_command_refuses_when_a_later_step_touched_its_file(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("overlap", journal=journal) as run:
        first = ws.run_shell("sed -i s/alpha/one/ README.md")
        later = ws.write_file("README.md", "overwritten")
    with pytest.raises(goex.RollbackFailed, match=later.step_id):
        goex.undo_step(first.step_id, journal=journal)
    assert (root / "README.md").read_text() == "overwritten"
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_none_backend_runs_unsandboxed_and_says_so(
    root: Path, tmp_path: Path, journal: goex.Journal
) -> None:
    ws = Workspace(root, store=tmp_path / "store", sandbox="none")
    before = manifest(root)
    with goex.run("trusted", journal=journal) as run:
        result = ws.run_shell("rm -rf src && echo trusted > t.txt")
    step = journal.get_step(result.step_id)
    assert step.effect["predicted"]["sandbox"] == "none"
    assert any("trusted use" in note for note in step.notes)
    assert (root / "t.txt").read_text() == "trusted\n" and not (root / "src").exists()
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


@pytest.mark.parametrize("backend", ["bwrap", "docker", "none"])
def test_processes_that_leave_the_session_are_killed_too(
    root: Path, tmp_path: Path, journal: goex.Journal, backend: str
) -> None:
    ws = Workspace(root, store=tmp_path / "store", sandbox=backend)
    seconds = unique_seconds()
    escape = f"(setsid sleep {seconds} </dev/null >/dev/null 2>&1 &); sleep 0.2; echo started"
    with goex.run("setsid", journal=journal):
        result = ws.run_shell(escape)
    assert result.stdout == "started\n"
    assert _processes_running(f"sleep {seconds}") == []
    assert any("processes it left running were killed" in n for n in result.notes)


def test_a_fifo_left_by_a_command_is_refused_by_name_and_nothing_is_applied(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with (
        goex.run("fifo", journal=journal) as run,
        pytest.raises(UnsupportedFile, match="the command left src/pipe as a device, FIFO"),
    ):
        ws.run_shell("echo changed > README.md && mkfifo src/pipe")
    assert manifest(root) == before
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED
    assert list((ws.store.root / "scratch").iterdir()) == []


def test_a_failing_command_keeps_its_changes_and_they_are_undone(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("failing", journal=journal) as run:
        result = ws.run_shell("echo half > half.txt && rm run.sh && false && echo never > n")
    assert result.exit_code == 1
    assert [(c.path, c.change) for c in result.changes] == [
        ("half.txt", "added"),
        ("run.sh", "deleted"),
    ]
    step = journal.get_step(result.step_id)
    assert step.status is StepStatus.APPLIED and step.effect["exit_code"] == 1
    assert (root / "half.txt").read_text() == "half\n" and not (root / "run.sh").exists()
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


@pytest.mark.parametrize(("limit", "value"), [("timeout", 0), ("timeout", -1)])
def test_invalid_limits_are_refused_before_anything_runs(
    ws: Workspace, root: Path, journal: goex.Journal, limit: str, value: float
) -> None:
    before = manifest(root)
    with (
        goex.run("limits", journal=journal) as run,
        pytest.raises(FsError, match=f"invalid limits for run_shell.*{limit}.*nothing was run"),
    ):
        ws.run_shell("touch ran", **{limit: value})  # type: ignore[arg-type]
    assert manifest(root) == before and journal.steps(run.id) == []


def test_actions_never_walk_the_whole_workspace(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    """A FIFO and a socket elsewhere in the tree would stop any full walk or rehash (goex
    cannot version them); actions that do not touch them work and undo exactly."""
    import socket

    (root / "run").mkdir()
    os.mkfifo(root / "run" / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "run" / "sock"))
    try:
        before = manifest(root)
        with goex.run("partial", journal=journal) as run:
            ws.write_file("src/new.py", "x = 1\n")
            ws.move_path("src/pkg", "pkg")
            ws.delete_path("empty")
            result = ws.run_shell("sed -i s/alpha/beta/ README.md && rm -rf locked && ls run")
        assert result.stdout == "fifo\nsock\n"
        assert [(c.path, c.change) for c in result.changes] == [
            ("README.md", "modified"),
            ("locked", "deleted"),
            ("locked/ro.txt", "deleted"),
        ]
        goex.rollback(run.id, journal=journal)
        assert manifest(root) == before
    finally:
        server.close()


def test_a_file_changed_while_the_command_ran_is_not_overwritten(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    import threading

    def person_edits() -> None:
        deadline = time.monotonic() + 60
        while not list(ws.store.scratch.glob("shell-*/upper/other.txt")):
            time.sleep(0.01)  # the command has edited README.md once it made other.txt
            assert time.monotonic() < deadline
        (root / "README.md").write_text("a person's edit\n")

    editor = threading.Thread(target=person_edits)
    editor.start()
    with (
        goex.run("race", journal=journal) as run,
        pytest.raises(WorkspaceChanged, match=r"README\.md changed in the workspace while"),
    ):
        ws.run_shell("sed -i s/alpha/agent/ README.md && touch other.txt && sleep 1")
    editor.join()
    assert (root / "README.md").read_text() == "a person's edit\n"
    assert not (root / "other.txt").exists()
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED


def test_a_secret_cut_by_the_output_limit_is_not_half_shown(
    root: Path, tmp_path: Path, journal: goex.Journal, backend: str
) -> None:
    secret = "zq9X-" + "k7" * 10
    redactor.add(secret)
    limits = Limits(output_limit=1000)
    ws = Workspace(root, store=tmp_path / "store", limits=limits, sandbox=backend)
    with goex.run("cut", journal=journal):
        result = ws.run_shell(f"head -c 995 /dev/zero | tr '\\0' a; echo {secret}; seq 1 5000")
    assert result.stdout_truncated and result.stdout.startswith("a" * 995)
    assert secret[:5] not in result.stdout and "zq9X" not in result.stdout
    mark = "\n[output truncated by goex: limit 1000 bytes]"
    assert result.stdout.endswith(mark) and len(result.stdout.encode()) <= 1000 + len(mark)


def test_the_blob_store_of_old_contents_is_hidden_from_commands(
    ws: Workspace, journal: goex.Journal
) -> None:
    with goex.run("peek", journal=journal):
        ws.delete_path("secret.key")  # its content now lives only in the store
        blobs = (ws.store.root / "objects").rglob("*")
        (blob,) = [p for p in blobs if p.is_file() and p.read_bytes() == b"key"]
        result = ws.run_shell(f"ls -A {ws.store.root} | wc -l; cat {blob}")
    assert result.stdout == "0\n" and "No such file" in result.stderr


def test_rewriting_a_hard_linked_file_is_noted_and_undone(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    os.link(root / "README.md", root / "readme-link")
    os.link(root / "run.sh", root / "run-link")
    before = manifest(root)
    with goex.run("links", journal=journal) as run:
        shell = ws.run_shell("echo more >> README.md")
        tool = ws.edit_file("run-link", "echo run", "echo ran")
    for step_id, name in ((shell.step_id, "README.md"), (tool.step_id, "run-link")):
        notes = journal.get_step(step_id).notes
        assert f"hard links broken: {name} rewritten" in " ".join(notes)
    assert (root / "README.md").read_text() == "# demo\nalpha beta\nmore\n"
    assert (root / "readme-link").read_text() == "# demo\nalpha beta\n"  # the other name
    assert (root / "run.sh").read_text() == "#!/bin/sh\necho run\n"
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_names_that_are_not_utf8_are_shown_escaped_and_restored_exactly(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("bytes", journal=journal) as run:
        result = ws.run_shell("printf 'x\\n' > \"$(printf 'bad\\377name')\"")
    assert (root / os.fsdecode(b"bad\xffname")).read_text() == "x\n"
    assert [c.path for c in result.changes] == ["bad\\xffname"]
    assert '"bad\\\\xffname"' in result.model_dump_json()  # JSON encoders refuse raw names
    shown = diff(result.step_id, journal=journal)
    assert "+++ b/bad\\xffname" in shown.text() and shown.model_dump_json()
    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_the_command_sees_the_workspace_roots_own_mode_and_owner(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    """As root, goex runs commands as nobody, to whom root's files are shown as its own
    (and its own as root's): it may write the workspace, and nothing else of root's."""
    root.chmod(0o751)
    st = root.stat()
    with goex.run("root", journal=journal):
        result = ws.run_shell("stat -c '%a %u %g' . && id -u")
    shown = 65534 if st.st_uid == 0 else st.st_uid
    me = 65534 if os.geteuid() == 0 else os.geteuid()
    assert result.stdout == f"751 {shown} {shown}\n{me}\n" and result.changes == []
