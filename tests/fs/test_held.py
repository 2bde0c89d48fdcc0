"""Tentative commands: held changes reviewed with `diff`, then kept or discarded (API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import StepStatus
from goex_tools.cli import main
from goex_tools.domains.fs import FsError, Workspace, WorkspaceChanged, diff, discard, keep
from tests.fs.conftest import manifest

COMMAND = "sed -i s/alpha/beta/ README.md && rm -rf empty && printf '\\001\\002' > blob.bin"


def cli(
    capsys: pytest.CaptureFixture[str], journal: goex.Journal, *args: str
) -> tuple[int, object]:
    code = main([*args, "--journal", journal.url, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_held_changes_touch_nothing_until_kept_then_undo_normally(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    before = manifest(root)
    with goex.run("tentative", journal=journal) as run:
        held = ws.run_shell(COMMAND, tentative=True)
    assert held.held and manifest(root) == before
    assert journal.get_step(held.step_id).status is StepStatus.HELD
    assert goex.rollback(run.id, journal=journal).outcomes == []  # nothing applied to undo

    kept = keep(held.step_id, journal=journal)
    assert kept.status is StepStatus.APPLIED
    assert (root / "README.md").read_text() == "# demo\nbeta beta\n"
    assert (root / "blob.bin").read_bytes() == b"\x01\x02" and not (root / "empty").exists()
    events = [e.status for e in journal.events(held.step_id)]
    assert events == [
        StepStatus.PENDING,
        StepStatus.PENDING,
        StepStatus.HELD,
        StepStatus.HELD,  # keeping
        StepStatus.APPLIED,
    ]

    goex.rollback(run.id, journal=journal)
    assert manifest(root) == before


def test_discard_leaves_the_workspace_and_a_persons_later_edits_alone(
    ws: Workspace, root: Path, journal: goex.Journal
) -> None:
    with goex.run("tentative", journal=journal):
        held = ws.run_shell(COMMAND, tentative=True)
    (root / "README.md").write_text("a person's edit\n")
    edited = manifest(root)
    with pytest.raises(WorkspaceChanged, match=r"README\.md"):
        keep(held.step_id, journal=journal)
    assert manifest(root) == edited
    assert discard(held.step_id, journal=journal).status is StepStatus.DISCARDED
    assert manifest(root) == edited
    with pytest.raises(FsError, match="is discarded, not held"):
        keep(held.step_id, journal=journal)


def test_diff_shows_text_diffs_and_binary_summaries(ws: Workspace, journal: goex.Journal) -> None:
    with goex.run("tentative", journal=journal):
        held = ws.run_shell(COMMAND, tentative=True)
    shown = diff(held.step_id, journal=journal)
    by_path = {f.path: f for f in shown.files}
    assert sorted(by_path) == ["README.md", "blob.bin", "empty"]
    assert by_path["README.md"].change == "modified"
    assert by_path["README.md"].diff == (
        "--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,2 @@\n # demo\n-alpha beta\n+beta beta\n"
    )
    assert by_path["blob.bin"].diff is None and by_path["blob.bin"].change == "added"
    sha = by_path["blob.bin"].after.sha256 or ""
    assert by_path["blob.bin"].summary == f"absent -> file 644 2 B sha256:{sha[:12]}"
    assert by_path["empty"].summary == "dir 755 -> absent"


def test_cli_diff_keep_discard(
    ws: Workspace, root: Path, journal: goex.Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    before = manifest(root)
    with goex.run("tentative", journal=journal):
        first = ws.run_shell("echo one > one.txt", tentative=True)
        second = ws.run_shell("echo two > two.txt", tentative=True)

    code, shown = cli(capsys, journal, "diff", first.step_id)
    assert code == 0 and [f["path"] for f in shown["files"]] == ["one.txt"]  # type: ignore[index]
    assert main(["diff", first.step_id, "--journal", journal.url]) == 0
    assert "+one" in capsys.readouterr().out

    code, kept = cli(capsys, journal, "keep", first.step_id)
    assert code == 0 and kept["status"] == "applied"  # type: ignore[index]
    code, dropped = cli(capsys, journal, "discard", second.step_id)
    assert code == 0 and dropped["status"] == "discarded"  # type: ignore[index]
    assert manifest(root) == before | {"one.txt": manifest(root)["one.txt"]}
    assert not (root / "two.txt").exists()

    code, error = cli(capsys, journal, "keep", second.step_id)
    assert code == 1 and "not held" in error["error"]  # type: ignore[index]
    code, error = cli(capsys, journal, "diff", "no-such-step")
    assert code == 2 and "no step" in error["error"]  # type: ignore[index]
