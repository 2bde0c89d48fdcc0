"""Against Jupyter Server (PyPI), token auth, with the rules inferred from its own Swagger
2.0 document (fetched with the test's own token: the document needs authentication).

The service's state is the directory it serves: compared file by file (type, mode, bytes).
Jupyter itself makes empty `.ipynb_checkpoints` directories when it lists or deletes a
file's checkpoints (goex lists them before a DELETE, and a DELETE deletes them); its API
hides them and offers no way to remove them, so they are the one difference allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.domains.http import HttpTool, UndoRules
from tests.http.leaks import file_leaks, leaks
from tests.http.third_party import JUPYTER_TOKEN, Server, jupyter, tree

AGENT = {"Authorization": "token {{secret:jupyter}}"}
OWN = {"Authorization": f"token {JUPYTER_TOKEN}"}


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from jupyter(tmp_path_factory.mktemp("jupyter"))


@pytest.fixture
def root(jupyter_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("GOEX_SECRET_JUPYTER", JUPYTER_TOKEN)
    monkeypatch.setenv("GOEX_SECRET_JUPYTER_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "none.toml"))
    root = jupyter_server.log.parent / "root"
    for path in sorted(root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "notes.txt").write_text("hello\n")
    (root / "old.txt").write_text("to be deleted\n")
    (root / "docs").mkdir()
    (root / "docs" / "a.md").write_text("# a\n")
    (root / "image.bin").write_bytes(bytes(range(256)))
    return root


@pytest.fixture
def api(jupyter_server: Server) -> HttpTool:
    document = httpx.get(f"{jupyter_server.url}/api/spec.yaml", headers=OWN)
    document.raise_for_status()
    doc = yaml.safe_load(document.text)
    assert doc["swagger"] == "2.0"
    return HttpTool(UndoRules().add_openapi(doc, base_url=jupyter_server.url))


def contents(server: Server, path: str) -> str:
    return f"{server.url}/api/contents/{path.replace('/', '%2F')}"


def test_jupyter_workload_rolls_back_to_the_exact_files(
    jupyter_server: Server,
    root: Path,
    api: HttpTool,
    sqlite_journal: Journal,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    before = tree(root)
    text = {"type": "file", "format": "text"}
    results = []
    with goex.run("jupyter", journal=sqlite_journal) as run:
        for method, path, body in [
            ("PUT", "new.txt", {**text, "content": "new\n"}),  # created
            ("PUT", "notes.txt", {**text, "content": "changed\n"}),  # replaced
            ("PUT", "docs/b.md", {**text, "content": "# b\n"}),  # created in a directory
            ("PUT", "docs/a.md", {**text, "content": "# A\n"}),
            ("PUT", "image.bin", {"type": "file", "format": "base64", "content": "AAEC"}),
            ("PUT", "newdir", {"type": "directory"}),
            ("DELETE", "old.txt", None),
        ]:
            results.append(api.request(method, contents(jupyter_server, path), AGENT, body))
    steps = sqlite_journal.steps(run.id)
    assert [s.status for s in steps] == [StepStatus.APPLIED] * 7, [s.notes for s in steps]
    assert [s.compensation.args["call"]["method"] for s in steps if s.compensation] == [
        "DELETE",
        "PUT",
        "DELETE",
        "PUT",
        "PUT",
        "DELETE",
        "PUT",
    ]
    assert tree(root) != before

    report = goex.rollback(run.id, journal=sqlite_journal)

    assert report.complete and len(report.compensated) == 7
    after = tree(root)
    bookkeeping = {p: e for p, e in after.items() if p.endswith(".ipynb_checkpoints")}
    assert all(
        kind == "dir" and not any((root / p).iterdir()) for p, (kind, _, _) in bookkeeping.items()
    )
    # every other file's bytes and mode are back; timestamps are the service's
    assert {p: e for p, e in after.items() if p not in bookkeeping} == before
    shown = "".join(r.model_dump_json() for r in results)
    assert leaks(shown + caplog.text, JUPYTER_TOKEN) == []
    assert file_leaks(tmp_path, JUPYTER_TOKEN) == []


def test_jupyter_rename_by_patch_is_marked_not_undoable(
    jupyter_server: Server, root: Path, api: HttpTool, sqlite_journal: Journal
) -> None:
    """The document calls PATCH an update, but Jupyter moves the file: writing the old
    state back at the old path would leave the new one, so the step says it cannot be
    undone rather than report a restore."""
    with goex.run(journal=sqlite_journal) as run:
        api.request("PATCH", contents(jupyter_server, "notes.txt"), AGENT, {"path": "moved.txt"})
    step = sqlite_journal.steps(run.id)[0]
    assert (root / "moved.txt").exists() and not (root / "notes.txt").exists()
    assert step.notes == [
        f"this step cannot be undone: after the call {contents(jupyter_server, 'notes.txt')} "
        f"is gone: the call moved or deleted it, and where it went is unknown"
    ]
    with pytest.raises(goex.RollbackFailed, match="irreversible step"):
        goex.rollback(run.id, journal=sqlite_journal)
    assert (root / "moved.txt").exists()
