"""The five file tools: exact effect, exact undo, clear refusals, conflicts between steps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import RollbackFailed, StepStatus
from goex_tools.domains.fs import FsError, Workspace
from tests.fs.conftest import manifest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_each_tool_changes_exactly_its_paths_and_rollback_restores_the_tree(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("tools", journal=journal) as run:
        ws.write_file("new/deep/file.txt", "fresh\n")
        ws.write_file("secret.key", "rotated")  # keeps its 0600 mode
        ws.edit_file("README.md", "alpha", "omega")
        ws.delete_path("locked")
        ws.move_path("src", "lib/src")
        ws.make_dir("a/b/c")
    after = manifest(root)
    expected = dict(before)
    for gone in ("locked", "locked/ro.txt", "src", "src/pkg", "src/pkg/mod.py", "src/main.py"):
        expected.pop(gone)
    for moved in ("src", "src/pkg", "src/pkg/mod.py", "src/main.py"):
        expected["lib/" + moved] = before[moved]
    expected["lib"] = ("dir", 0o755, 0, "", "")
    for made in ("new", "new/deep", "a", "a/b", "a/b/c"):
        expected[made] = ("dir", 0o755, 0, "", "")
    expected["new/deep/file.txt"] = ("file", 0o644, 6, sha(b"fresh\n"), "")
    expected["secret.key"] = ("file", 0o600, 7, sha(b"rotated"), "")
    expected["README.md"] = ("file", before["README.md"][1], 18, sha(b"# demo\nomega beta\n"), "")
    assert after == dict(sorted(expected.items()))

    report = goex.rollback(run.id, journal=journal)
    assert report.complete and len(report.compensated) == 6
    assert manifest(root) == before
    assert {s.status for s in journal.steps(run.id)} == {StepStatus.COMPENSATED}


def test_steps_follow_the_shared_contract(ws: Workspace, root: Path, journal: goex.Journal) -> None:
    with goex.run("contract", journal=journal) as run:
        ws.write_file("notes/today.txt", "12345")
        ws.move_path("run.sh", "bin/run.sh")
    write, move = journal.steps(run.id)
    assert (write.domain, write.tool, move.tool) == ("fs", "write_file", "move_path")
    assert write.effect == {
        "predicted": {"workspace": str(root), "paths": ["notes/today.txt"]},
        "changes": [
            {"path": "notes", "change": "added"},
            {"path": "notes/today.txt", "change": "added"},
        ],
        "bytes_written": 5,
    }
    assert move.effect["predicted"] == {"workspace": str(root), "paths": ["run.sh", "bin/run.sh"]}
    assert move.effect["changes"] == [
        {"path": "bin", "change": "added"},
        {"path": "bin/run.sh", "change": "added"},
        {"path": "run.sh", "change": "deleted"},
    ]
    assert write.compensation is not None and write.compensation.kind == "fs.restore"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ws: ws.write_file("../outside.txt", "x"), "does not name a path inside"),
        (lambda ws: ws.write_file("/etc/passwd", "x"), "outside the workspace"),
        (lambda ws: ws.write_file("link-to-readme/x", "x"), "goes through the symlink"),
        (lambda ws: ws.write_file("src", "x"), "is a dir, not a file"),
        (lambda ws: ws.write_file("README.md/x", "x"), "not a directory"),
        (lambda ws: ws.edit_file("README.md", "zeta", "eta"), "does not occur"),
        (lambda ws: ws.edit_file("README.md", "", "eta"), "text to replace in README.md is empty"),
        (lambda ws: ws.edit_file("README.md", "a", "A"), "occurs 3 times"),
        (lambda ws: ws.edit_file("data.bin", "a", "b"), "not UTF-8 text"),
        (lambda ws: ws.edit_file("missing.txt", "a", "b"), "not a file"),
        (lambda ws: ws.delete_path("missing"), "does not exist"),
        (lambda ws: ws.delete_path("."), "does not name a path inside"),
        (lambda ws: ws.move_path("run.sh", "README.md"), "already exists"),
        (lambda ws: ws.move_path("src", "src/inner"), "into itself"),
        (lambda ws: ws.make_dir("empty"), "already exists"),
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(
    ws: Workspace, root: Path, journal: goex.Journal, call: object, message: str
) -> None:
    before = manifest(root)
    with goex.run("bad", journal=journal) as run, pytest.raises(FsError, match=message):
        call(ws)  # type: ignore[operator]
    assert manifest(root) == before
    assert journal.steps(run.id) == []


def test_path_through_a_symlinked_directory_is_refused(
    ws: Workspace, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(FsError, match="goes through the symlink escape"):
        ws.write_file("escape/planted.txt", "x")
    assert list(outside.iterdir()) == []


def test_store_inside_the_workspace_is_refused(root: Path) -> None:
    with pytest.raises(FsError, match="must be outside the workspace"):
        Workspace(root, store=root / ".goex-store")


def test_undoing_a_middle_step_refuses_when_a_later_step_changed_the_same_file(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("overlap", journal=journal) as run:
        first = ws.edit_file("README.md", "alpha", "first")
        ws.write_file("other.txt", "unrelated")
        second = ws.edit_file("README.md", "first", "second")
    middle = manifest(root)

    with pytest.raises(RollbackFailed) as failed:
        goex.undo_step(first.step_id, journal=journal)
    message = str(failed.value)
    assert "README.md" in message and second.step_id in message and "edit_file" in message
    assert manifest(root) == middle  # nothing touched
    assert journal.get_step(first.step_id).status is StepStatus.COMPENSATION_FAILED

    # The defined way out: roll back the run newest first (the later step goes first).
    report = goex.rollback(run.id, journal=journal)
    assert report.complete
    assert manifest(root) == before


def test_force_overwrites_a_later_change_to_the_same_file(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    original = (root / "README.md").read_bytes()
    with goex.run("force", journal=journal):
        first = ws.edit_file("README.md", "alpha", "first")
        ws.write_file("README.md", "rewritten")
    goex.undo_step(first.step_id, journal=journal, force=True)
    assert (root / "README.md").read_bytes() == original


def test_a_change_made_outside_goex_is_a_conflict_until_forced(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("outside", journal=journal) as run:
        ws.write_file("README.md", "agent text")
    (root / "README.md").write_text("a person's text")
    touched = manifest(root)
    with pytest.raises(RollbackFailed, match="outside goex"):
        goex.rollback(run.id, journal=journal)
    assert manifest(root) == touched
    goex.rollback(run.id, journal=journal, force=True)
    assert manifest(root) == before


def test_a_directory_a_person_added_files_to_is_not_removed(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("mkdir", journal=journal) as run:
        ws.make_dir("build")
    (root / "build" / "theirs.txt").write_text("keep me")
    with pytest.raises(RollbackFailed, match="holds files that goex did not record"):
        goex.rollback(run.id, journal=journal)
    assert (root / "build" / "theirs.txt").read_text() == "keep me"
    (root / "build" / "theirs.txt").unlink()  # the person moves their file away: resume
    assert goex.rollback(run.id, journal=journal).complete
    assert manifest(root) == before


def test_rollback_from_another_process_with_a_postgres_journal(
    root: Path, tmp_path: Path, pg_url: str
) -> None:
    import subprocess
    import sys

    ws = Workspace(root, store=tmp_path / "store")
    before = manifest(root)
    with goex.run("pg", journal=pg_url) as run:
        ws.delete_path("src")
        ws.write_file("src", "now a file")
        ws.edit_file("src", "file", "FILE")
    done = subprocess.run(
        [sys.executable, "-m", "goex_tools.cli", "rollback", run.id, "--journal", pg_url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert manifest(root) == before


def test_an_undo_whose_store_lost_the_old_contents_touches_nothing(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    import shutil

    with goex.run("lost", journal=journal) as run:  # files become a dir and a symlink
        ws.run_shell("rm README.md run.sh && mkdir README.md && ln -s README.md run.sh")
    after = manifest(root)
    shutil.rmtree(ws.store.objects)
    with pytest.raises(RollbackFailed, match=r"lacks the recorded content of README\.md, run\.sh"):
        goex.rollback(run.id, journal=journal)
    assert manifest(root) == after  # not half undone: the dir and the link are still there
