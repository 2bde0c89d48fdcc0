"""A hostile command cannot use goex itself to reach past its workspace.

goex runs outside the sandbox, as the user running the agent; a command can leave symlinks
anywhere in the workspace. Each test plants one where goex will later read, write or delete
(applying, keeping, discarding, undoing, diffing), with a victim directory outside the
workspace, and checks that the victim was not read, written or deleted, that the journal and
the store are intact, and that the step was refused or undone exactly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import StepStatus
from goex_tools.domains.fs import FsError, Workspace, diff, discard, keep
from goex_tools.domains.fs.apply import materialize
from goex_tools.domains.fs.changes import PathChange
from goex_tools.domains.fs.entries import ABSENT, Entry
from tests.fs.conftest import Manifest, manifest

HOST_SECRET = "host secret: never in goex's store"


@pytest.fixture
def ws(root: Path, tmp_path: Path, backend: str) -> Workspace:
    """The workspace, its commands run in each confining backend in turn."""
    return Workspace(root, store=tmp_path / "store", sandbox=backend)


@pytest.fixture
def victim() -> Iterator[Path]:
    """A host directory outside the workspace (and outside /tmp, which the sandbox replaces)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="goex-victim-"))
    (path / "important.txt").write_text("important\n")
    (path / "a.txt").write_text("a\n")  # the same content the workspace's docs/a.txt has
    (path / "secret.txt").write_text(HOST_SECRET)
    (path / "sub").mkdir()
    (path / "sub" / "deep.txt").write_text("deep\n")
    yield path
    shutil.rmtree(path)


@pytest.fixture
def docs(ws: Workspace, root: Path) -> Path:
    (root / "docs").mkdir()
    (root / "docs" / "a.txt").write_text("a\n")
    return root / "docs"


def intact(victim: Path, before: Manifest, journal: goex.Journal, ws: Workspace) -> None:
    """The victim as it was, goex's store holding none of it, every journaled before- and
    after-image still in the store, and the journal still there."""
    assert manifest(victim) == before
    for blob in (ws.store.root / "objects").rglob("*"):
        if blob.is_file():
            assert HOST_SECRET.encode() not in blob.read_bytes()
    assert Path(journal.url.removeprefix("sqlite:///")).is_file()
    for run in journal.list_runs(limit=100):
        for step in journal.steps(run.id):
            if step.compensation is None or step.compensation.kind != "fs.restore":
                continue
            for change in step.compensation.args["changes"]:
                for side in ("before", "after"):
                    sha = change[side].get("sha256")
                    assert sha is None or ws.store.has(sha), f"{change['path']} {side} lost"


def test_a_planted_symlink_never_makes_goex_delete_the_host_file_below_it(
    ws: Workspace, root: Path, journal: goex.Journal, victim: Path
) -> None:
    before, victim_before = manifest(root), manifest(victim)
    with goex.run("plant", journal=journal) as run:
        ws.run_shell(f"ln -s {victim} e")
        result = ws.run_shell("rm e && mkdir -p e/important.txt")
    assert result.exit_code == 0, result.stderr
    assert (root / "e" / "important.txt").is_dir() and not (root / "e").is_symlink()
    intact(victim, victim_before, journal, ws)
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before
    intact(victim, victim_before, journal, ws)


def test_a_symlink_through_proc_self_root_is_not_followed_either(
    ws: Workspace, root: Path, journal: goex.Journal, victim: Path
) -> None:
    before, victim_before = manifest(root), manifest(victim)
    with goex.run("proc", journal=journal) as run:
        ws.run_shell(f"ln -s /proc/self/root{victim} p && ln -s /proc/self/cwd/.. up")
        ws.run_shell("rm p up && mkdir -p p/important.txt up/important.txt")
    intact(victim, victim_before, journal, ws)
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before


def test_a_relative_symlink_moved_up_a_level_leads_nowhere_for_goex(
    ws: Workspace, root: Path, tmp_path: Path, journal: goex.Journal, victim: Path
) -> None:
    """`..` inside the workspace, renamed to the top: now it names the workspace's parent."""
    shutil.copytree(victim, tmp_path / "victim")
    victim_before = manifest(tmp_path / "victim")
    before = manifest(root)
    with goex.run("dotdot", journal=journal) as run:
        ws.run_shell("mkdir a && ln -s .. a/up")
        ws.run_shell("mv a/up up")
        ws.run_shell("rm up && mkdir -p up/victim/important.txt up/victim/sub")
    assert manifest(tmp_path / "victim") == victim_before
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before and manifest(tmp_path / "victim") == victim_before


def test_keep_never_writes_through_a_parent_a_later_command_made_a_symlink(
    ws: Workspace, root: Path, journal: goex.Journal, victim: Path, docs: Path
) -> None:
    victim_before = manifest(victim)
    with goex.run("held", journal=journal) as run:
        held = ws.run_shell("echo payload > docs/new.txt && rm docs/a.txt", tentative=True)
        ws.run_shell(f"rm -rf docs && ln -s {victim} docs")
    after_swap = manifest(root)
    with pytest.raises(FsError, match=r"docs is a symlink.*never follows"):
        keep(held.step_id, journal=journal)
    assert journal.get_step(held.step_id).status is StepStatus.HELD
    assert manifest(root) == after_swap
    intact(victim, victim_before, journal, ws)
    assert discard(held.step_id, journal=journal).status is StepStatus.DISCARDED
    assert manifest(root) == after_swap
    intact(victim, victim_before, journal, ws)
    assert goex.rollback(run.id, journal=journal).complete
    assert (root / "docs" / "a.txt").read_text() == "a\n" and not (root / "docs").is_symlink()
    intact(victim, victim_before, journal, ws)


@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
def test_undo_out_of_order_never_writes_or_deletes_through_a_planted_symlink(
    ws: Workspace, root: Path, journal: goex.Journal, victim: Path, docs: Path, force: bool
) -> None:
    (victim / "b.txt").write_text("host b\n")
    victim_before = manifest(victim)
    with goex.run("order", journal=journal):
        removed = ws.run_shell("rm docs/a.txt")  # its undo writes docs/a.txt
        added = ws.write_file("docs/b.txt", "agent b\n")  # its undo deletes docs/b.txt
        ws.run_shell(f"rm -rf docs && ln -s {victim} docs")
    swapped = manifest(root)
    # Nothing named docs/b.txt is in the workspace any more: the undo has nothing to delete.
    assert goex.undo_step(added.step_id, journal=journal, force=force).complete
    intact(victim, victim_before, journal, ws)
    with pytest.raises(goex.RollbackFailed, match=r"docs is a symlink"):
        goex.undo_step(removed.step_id, journal=journal, force=force)
    assert manifest(root) == swapped
    intact(victim, victim_before, journal, ws)


def test_a_symlink_into_the_store_cannot_make_goex_delete_a_before_image(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("store", journal=journal) as run:
        first = ws.run_shell("echo changed > README.md")
        sha = journal.get_step(first.step_id).compensation.args["changes"][0]["before"]["sha256"]  # type: ignore[union-attr]
        blob = Path(ws.store.name(sha))
        ws.run_shell(f"ln -s {blob.parent} s")
        ws.run_shell(f"rm s && mkdir -p s/{blob.name}")
    assert blob.is_file() and blob.read_bytes() == b"# demo\nalpha beta\n"
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before


def test_a_symlink_to_the_journals_directory_cannot_make_goex_delete_it(
    ws: Workspace, root: Path, tmp_path: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    database = tmp_path / "journal.db"
    with goex.run("journal", journal=journal) as run:
        ws.run_shell(f"ln -s {tmp_path} j")
        ws.run_shell("rm j && mkdir -p j/journal.db j/journal.db-wal")
    assert database.is_file() and len(journal.steps(run.id)) == 2
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before and database.is_file()


def test_goex_never_captures_a_host_file_as_a_before_image_nor_shows_it(
    ws: Workspace, root: Path, journal: goex.Journal, victim: Path
) -> None:
    before, victim_before = manifest(root), manifest(victim)
    with goex.run("read", journal=journal) as run:
        ws.run_shell(f"ln -s {victim} v")
        result = ws.run_shell("rm v && mkdir v && echo mine > v/secret.txt")
    shown = diff(result.step_id, journal=journal)
    assert HOST_SECRET not in shown.text() and HOST_SECRET not in shown.model_dump_json()
    by_path = {f.path: f for f in shown.files}
    assert by_path["v/secret.txt"].before == ABSENT
    intact(victim, victim_before, journal, ws)
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before


def test_a_parent_swapped_for_a_symlink_between_plan_and_apply_is_refused(
    ws: Workspace,
    root: Path,
    journal: goex.Journal,
    victim: Path,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file tools record before-images, then apply: a swap in between is met at use."""
    victim_before = manifest(victim)
    real_apply = Workspace.apply

    def swap_then_apply(self: Workspace, *args: object, **kwargs: object) -> None:
        shutil.rmtree(docs)
        docs.symlink_to(victim)
        real_apply(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Workspace, "apply", swap_then_apply)
    with goex.run("swap", journal=journal) as run, pytest.raises(FsError):
        ws.write_file("docs/a.txt", "agent\n")
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED
    intact(victim, victim_before, journal, ws)


def test_a_journaled_path_that_climbs_out_is_refused_before_anything(
    ws: Workspace, root: Path, victim: Path
) -> None:
    """Journal rows are data; one edited to say `../victim/x` must not be obeyed."""
    before, victim_before = manifest(root), manifest(victim)
    rel = os.path.relpath(victim / "important.txt", root)
    change = PathChange(path=rel, before=Entry(type="file", mode=0o644), after=ABSENT)
    with pytest.raises(FsError, match="not a normalised path"):
        materialize(root, ws.store, [change], "after", force=True)
    assert manifest(root) == before and manifest(victim) == victim_before


def test_a_refused_undo_changes_nothing(ws: Workspace, root: Path, journal: goex.Journal) -> None:
    with goex.run("refuse", journal=journal) as run:
        ws.run_shell("mkdir -p newdir/sub && echo x > newdir/sub/f.txt")
    (root / "newdir" / "sub" / "mine.txt").write_text("a person's file\n")
    held = manifest(root)
    report = None
    with pytest.raises(goex.RollbackFailed, match="did not record") as caught:
        goex.rollback(run.id, journal=journal)
    report = caught.value.report
    assert not report.complete and manifest(root) == held
    assert (root / "newdir" / "sub" / "f.txt").read_text() == "x\n"


# The sandbox: what a command can see and use of the host.


def server_socket(server: str) -> tuple[str, str]:
    """The Unix socket the real test server listens on (asked of the server itself, over
    TCP), and a client command that would use it as its superuser."""
    import sqlalchemy as sa

    from tests.conftest import POSTGRES_URL
    from tests.sql.conftest import MYSQL_URL

    if server == "postgresql":
        with sa.create_engine(POSTGRES_URL).connect() as conn:
            directory = str(conn.exec_driver_sql("SHOW unix_socket_directories").scalar())
            port = str(conn.exec_driver_sql("SHOW port").scalar())
        directory = directory.split(",")[0].strip()
        client = f"psql -h {directory} -p {port} -U postgres -d test -Atc 'select 42'"
        return f"{directory}/.s.PGSQL.{port}", client
    with sa.create_engine(MYSQL_URL, poolclass=sa.pool.NullPool).connect() as conn:
        path = str(conn.exec_driver_sql("SELECT @@socket").scalar())
    return path, f"mysql -S {path} -uroot -e 'select 42'"


def _reachable_from_host(path: str) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@pytest.mark.parametrize("server", ["mariadb", "postgresql"])
def test_run_shell_cannot_reach_the_real_database_servers_sockets(
    ws: Workspace, journal: goex.Journal, server: str
) -> None:
    path, client = server_socket(server)
    assert _reachable_from_host(path), f"{server} does not listen on {path}"
    probe = f"python3 -c \"import socket; socket.socket(socket.AF_UNIX).connect('{path}')\""
    with goex.run("sockets", journal=journal):
        result = ws.run_shell(f"ls -la {os.path.dirname(path)}; {client}; {probe}")
    assert "42" not in result.stdout
    assert "No such file or directory" in result.stderr
    assert result.exit_code != 0


def test_no_socket_is_anywhere_a_command_can_see(ws: Workspace, journal: goex.Journal) -> None:
    with goex.run("find", journal=journal):
        result = ws.run_shell("find / -path /proc -prune -o -type s -print 2>/dev/null; true")
    assert result.stdout == ""


def test_a_command_runs_unprivileged_and_cannot_read_root_only_files(
    ws: Workspace, journal: goex.Journal
) -> None:
    with goex.run("uid", journal=journal):
        result = ws.run_shell("id -u; cat /etc/shadow; grep -E 'Cap|NoNewPrivs' /proc/self/status")
    lines = result.stdout.splitlines()
    assert lines[0] != "0"
    assert "/etc/shadow: Permission denied" in result.stderr or not Path("/etc/shadow").exists()
    status = dict(line.split(":\t") for line in lines[1:])
    assert status.pop("NoNewPrivs") == "1"  # a set-uid program gains nothing
    assert set(status) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert set(status.values()) == {"0000000000000000"}


def test_the_journal_store_and_secrets_stay_hidden_even_below_a_shown_directory(
    root: Path,
    tmp_path: Path,
    journal: goex.Journal,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    from goex_tools.sandbox import Limits

    secrets = tmp_path / "secrets" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('[token]\nvalue = "s3"\n')
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(secrets))
    shown = Limits(show=[str(tmp_path)])
    ws = Workspace(root, store=tmp_path / "store", limits=shown, sandbox=backend)
    probe = f"ls {tmp_path}; ls -A {tmp_path}/store {tmp_path}/secrets | wc -l; cat {secrets}"
    with goex.run("hidden", journal=journal):
        result = ws.run_shell(f"{probe}; od -c {tmp_path}/journal.db | head -1")
    assert "ws" in result.stdout.split()  # the shown directory is there
    assert "journal.db" not in result.stdout and "s3" not in result.stdout
    assert "No such file" in result.stderr


def test_a_journal_inside_the_workspace_is_refused_before_anything_runs(
    ws: Workspace, root: Path
) -> None:
    before = manifest(root)
    inside = goex.Journal(f"sqlite:///{root}/.journal.db")
    try:
        with goex.run("inside", journal=inside), pytest.raises(FsError, match="inside the work"):
            ws.run_shell("echo x > x.txt")
        with goex.run("inside", journal=inside), pytest.raises(FsError, match="inside the work"):
            ws.write_file("x.txt", "x")
    finally:
        inside.close()
    assert {k: v for k, v in manifest(root).items() if "journal" not in k} == before


# Resource limits: a command past one is stopped, its step fails, nothing is applied.

LIMITED = {
    "memory": ("head -c 900M /dev/zero | tail > /dev/null", {}, "memory"),
    "processes": ("for i in $(seq 400); do sleep 2 & done; wait", {}, "processes"),
    "file_size": ("head -c 3000000 /dev/zero > big.bin", {"file_size": 1 << 20}, "file size"),
    "cpu_time": ("while :; do :; done", {"cpu_time": 1, "timeout": 20}, "CPU time"),
}


@pytest.mark.parametrize("name", sorted(LIMITED))
def test_a_command_past_a_resource_limit_fails_and_applies_nothing(
    root: Path, tmp_path: Path, journal: goex.Journal, name: str, backend: str
) -> None:
    from goex_tools.sandbox import LimitExceeded, Limits

    command, limits, shown = LIMITED[name]
    if name in ("memory", "processes") and os.geteuid() != 0:
        pytest.skip("whole-command memory and process limits need a cgroup (root)")
    ws = Workspace(root, store=tmp_path / "store", limits=Limits(**limits), sandbox=backend)
    before = manifest(root)
    with goex.run(name, journal=journal) as run, pytest.raises(LimitExceeded, match=shown):
        ws.run_shell(f"echo partial > partial.txt && rm README.md; {command}")
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED
    assert manifest(root) == before


def test_the_default_limits_stop_a_gigabyte_and_a_thousand_processes(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    from goex_tools.sandbox import LimitExceeded

    if os.geteuid() != 0:
        pytest.skip("whole-command memory and process limits need a cgroup (root)")
    before = manifest(root)
    for command in ("head -c 1G /dev/zero | tail", "for i in $(seq 1000); do sleep 2 & done"):
        with goex.run("defaults", journal=journal), pytest.raises(LimitExceeded):
            ws.run_shell(f"touch made.txt; {command}; wait")
        assert manifest(root) == before


def test_doctor_reports_hidden_sockets_an_unprivileged_user_and_limits(backend: str) -> None:
    from goex_tools.policy.doctor import doctor

    report = doctor(backends=(backend,))
    found = {c.name: c for c in report.checks}
    assert found["sockets hidden"].status == "ok", found["sockets hidden"].detail
    assert found["user unprivileged"].status == "ok", found["user unprivileged"].detail
    assert found["limits in force"].status in ("ok", "warn")
    assert "CPU 60 s" in found["limits in force"].detail
    assert found["network isolation"].status == "ok", found["network isolation"].detail


def test_the_confinement_probe_sees_what_an_unconfined_command_sees() -> None:
    """The control: with no sandbox, the same probe finds the host's sockets and root."""
    from goex_tools.sandbox.confinement import probe

    found = {name: (status, detail) for name, status, detail in probe("none")}
    assert found["sockets hidden"][0] == "fail"
    if os.geteuid() == 0:
        assert found["user unprivileged"][0] == "fail"


def test_a_commands_limits_are_in_its_proposal_for_a_gate_to_judge(
    root: Path, tmp_path: Path, journal: goex.Journal, backend: str
) -> None:
    from goex_tools.sandbox import Limits

    limits = Limits(memory=64 << 20, processes=8)
    ws = Workspace(root, store=tmp_path / "store", limits=limits, sandbox=backend)
    with goex.run("limits", journal=journal):
        result = ws.run_shell("true")
    predicted = journal.get_step(result.step_id).effect["predicted"]
    assert predicted["limits"] == {
        "memory": 64 << 20,
        "processes": 8,
        "file_size": 1 << 30,
        "cpu_time": 60.0,
    }
