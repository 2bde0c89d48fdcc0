"""The GitHub pack's pairs on a service that keeps state (tests/http/github/service.py: files
and refs in a real git repository): a workload rolled back gives the state back, compared
whole; what GitHub cannot give back is listed where it differs."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, Reversibility, RollbackFailed, StepStatus
from goex_tools.domains.http import HttpTool
from goex_tools.domains.http.packs import github
from goex_tools.policy import Policy, PolicyConfig
from tests.http.github.service import GitHubLike, Running
from tests.http.github.spec import accepts_undos

TOKEN = "ghp_9f8e7d6c5b4a3210ZYXWvuts"
AUTH = {"Authorization": "Bearer {{secret:github}}"}
LARGE = 2000  # bytes from which the service reads a file with `encoding: none`


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubLike]:
    monkeypatch.setenv("GOEX_SECRET_GITHUB", TOKEN)
    monkeypatch.setenv("GOEX_SECRET_GITHUB_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "none.toml"))
    service = GitHubLike(tmp_path, large=LARGE)
    git = service.git
    git.commit("main", "README.md", b"# hello\n", "first")
    git.commit("main", "docs/guide.md", b"read me first\n", "guide")
    git.commit("main", "data/big.csv", b"x," * LARGE, "a large file")
    main = git.refs()["refs/heads/main"]
    for branch in ("dev", "old"):
        git("update-ref", f"refs/heads/{branch}", main)
    git.commit("dev", "README.md", b"# hello from dev\n", "dev work")
    git("update-ref", "refs/heads/ahead", git.refs()["refs/heads/dev"])
    git.commit("ahead", "NEXT.md", b"next\n", "ahead of dev")
    for name in ("bug", "docs", "triage"):
        service._label(name)
    number = service.seed_issue("Crash on start", ["bug"], ["octocat"])
    service.comments[7] = {"id": 7, "issue": number, "body": "Seen it too", "updated_at": "x"}
    running = Running(service)
    service.url = running.url
    yield service
    running.stop()


@pytest.fixture
def api(hub: GitHubLike) -> HttpTool:
    return HttpTool(github.rules(hub.url))


def repo(hub: GitHubLike) -> str:
    return f"{hub.url}/repos/octo/hello"


def sha(hub: GitHubLike, path: str, branch: str = "main") -> str:
    found = hub.git.blob(branch, path)
    assert found is not None
    return found[0]


def test_github_files_written_through_the_contents_api_roll_back_exactly(
    hub: GitHubLike, api: HttpTool, sqlite_journal: Journal, prism_url: str
) -> None:
    before = hub.state()
    base = repo(hub)
    with goex.run("files", journal=sqlite_journal) as run:
        api.request(
            "PUT",
            f"{base}/contents/notes/new.md",
            AUTH,
            {"message": "add", "content": b64("new\n")},
        )
        api.request(
            "PUT",
            f"{base}/contents/README.md",
            AUTH,
            {"message": "edit", "content": b64("changed\n"), "sha": sha(hub, "README.md")},
        )
        api.request(
            "DELETE",
            f"{base}/contents/docs%2Fguide.md",
            AUTH,
            {"message": "remove", "sha": sha(hub, "docs/guide.md")},
        )
        api.request(
            "PUT",
            f"{base}/contents/README.md",
            AUTH,
            {
                "message": "on dev",
                "content": b64("dev again\n"),
                "sha": sha(hub, "README.md", "dev"),
                "branch": "dev",
            },
        )
    changed = hub.state()
    assert changed["trees"] != before["trees"]
    steps = sqlite_journal.steps(run.id)
    assert [s.reversibility for s in steps] == [Reversibility.EXACT] * 4
    assert accepts_undos(prism_url, steps, hub.url) == 4
    report = goex.rollback(run.id, journal=sqlite_journal)
    assert report.complete and report.restored_exactly == [s.id for s in reversed(steps)]
    after = hub.state()
    assert after["trees"] == before["trees"]  # every file of every branch, by blob sha
    # what differs, and only that: the heads of the branches written, which moved on by a
    # commit per write and per undo (GitHub keeps history)
    moved = {"refs/heads/main", "refs/heads/dev"}
    assert {k for k in after["refs"] if after["refs"][k] != before["refs"][k]} == moved
    assert {k: v for k, v in after.items() if k not in ("refs", "trees")} == {
        k: v for k, v in before.items() if k not in ("refs", "trees")
    }


def test_github_file_changed_since_is_a_conflict_and_force_restores_it(
    hub: GitHubLike, api: HttpTool, sqlite_journal: Journal
) -> None:
    before = hub.state()
    base = repo(hub)
    with goex.run("edit", journal=sqlite_journal) as run:
        body = {"message": "edit", "content": b64("agent\n"), "sha": sha(hub, "README.md")}
        api.request("PUT", f"{base}/contents/README.md", AUTH, body)
    hub.git.commit("main", "README.md", b"someone else\n", "a person's edit")
    with pytest.raises(RollbackFailed, match="conflict"):
        goex.rollback(run.id, journal=sqlite_journal)
    assert hub.git.blob("main", "README.md")[1] == b"someone else\n"  # type: ignore[index]
    goex.rollback(run.id, journal=sqlite_journal, force=True)
    assert hub.state()["trees"] == before["trees"]


def test_github_refs_created_moved_and_deleted_roll_back_exactly(
    hub: GitHubLike, api: HttpTool, sqlite_journal: Journal, prism_url: str
) -> None:
    before = hub.state()
    base, refs = repo(hub), hub.git.refs()
    with goex.run("refs", journal=sqlite_journal) as run:
        body = {"ref": "refs/heads/feature/x", "sha": refs["refs/heads/main"]}
        api.request("POST", f"{base}/git/refs", AUTH, body)
        body = {"sha": refs["refs/heads/ahead"], "force": False}  # a fast-forward
        api.request("PATCH", f"{base}/git/refs/heads/dev", AUTH, body)
        api.request("DELETE", f"{base}/git/refs/heads%2Fold", AUTH)
    assert hub.git.refs()["refs/heads/dev"] == refs["refs/heads/ahead"]
    assert "refs/heads/old" not in hub.git.refs()
    steps = sqlite_journal.steps(run.id)
    assert [s.reversibility for s in steps] == [Reversibility.EXACT] * 3
    assert accepts_undos(prism_url, steps, hub.url) == 3
    report = goex.rollback(run.id, journal=sqlite_journal)
    assert report.complete and len(report.restored_exactly) == 3
    assert hub.state() == before  # the whole state: refs, files, issues, comments, labels


def test_github_force_move_of_a_ref_is_irreversible_and_refused_unsent(
    hub: GitHubLike, api: HttpTool, sqlite_journal: Journal
) -> None:
    before = hub.state()
    gate = Policy(PolicyConfig(default="allow", irreversible="refuse"))
    refs = hub.git.refs()
    body = {"sha": refs["refs/heads/main"], "force": True}
    url = f"{repo(hub)}/git/refs/heads/ahead"
    assert api.classify("PATCH", url, AUTH, body).reversibility is Reversibility.IRREVERSIBLE
    with goex.run("force", journal=sqlite_journal, gate=gate), pytest.raises(ActionRefused):
        api.request("PATCH", url, AUTH, body)
    assert hub.state() == before


def test_github_issue_workload_rolls_back_exactly_except_its_semantic_create(
    hub: GitHubLike, api: HttpTool, sqlite_journal: Journal, prism_url: str
) -> None:
    before = hub.state()
    base = repo(hub)
    with goex.run("issues", journal=sqlite_journal) as run:
        created = api.request("POST", f"{base}/issues", AUTH, {"title": "New", "labels": ["docs"]})
        edit = {
            "title": "Crash on start (renamed)",
            "body": "steps to reproduce",
            "state": "closed",
            "labels": ["triage"],
            "assignees": ["hubot", "monalisa"],
            "milestone": 2,
        }
        api.request("PATCH", f"{base}/issues/1", AUTH, edit)
        api.request("POST", f"{base}/issues/1/labels", AUTH, {"labels": ["bug", "docs"]})
        api.request("DELETE", f"{base}/issues/1/labels/triage", AUTH)
        api.request("POST", f"{base}/issues/1/assignees", AUTH, {"assignees": ["octocat"]})
        api.request("DELETE", f"{base}/issues/1/assignees", AUTH, {"assignees": ["hubot"]})
        api.request("POST", f"{base}/issues/1/comments", AUTH, {"body": "Fixed, I think"})
        api.request("PATCH", f"{base}/issues/comments/7", AUTH, {"body": "Never mind"})
    steps = sqlite_journal.steps(run.id)
    assert steps[0].reversibility is Reversibility.SEMANTIC
    assert all(s.reversibility is Reversibility.EXACT for s in steps[1:])
    assert accepts_undos(prism_url, steps, hub.url) == 8
    report = goex.rollback(run.id, journal=sqlite_journal)
    assert report.complete
    assert report.restored_semantically == [steps[0].id]
    assert sorted(report.restored_exactly) == sorted(s.id for s in steps[1:])
    after = hub.state()
    new = created.body["number"]
    # the issue GitHub cannot delete is closed as not planned; it is the only new thing
    assert (after["issues"][new]["state"], after["issues"][new]["state_reason"]) == (
        "closed",
        "not_planned",
    )
    assert {n: i for n, i in after["issues"].items() if n != new} == {
        n: _reopened(i) for n, i in before["issues"].items()
    }
    assert after["comments"] == before["comments"] and after["labels"] == before["labels"]
    assert (after["refs"], after["trees"]) == (before["refs"], before["trees"])


def _reopened(issue: dict[str, Any]) -> dict[str, Any]:
    """An issue closed and reopened: GitHub says `state_reason: reopened` from then on."""
    return {**issue, "state_reason": "reopened"}


def test_github_file_too_large_to_read_back_has_no_undo_and_says_why(
    hub: GitHubLike, api: HttpTool, sqlite_journal: Journal
) -> None:
    body = {"message": "shrink", "content": b64("small\n"), "sha": sha(hub, "data/big.csv")}
    with goex.run("large", journal=sqlite_journal) as run:
        api.request("PUT", f"{repo(hub)}/contents/data/big.csv", AUTH, body)
    (step,) = sqlite_journal.steps(run.id)
    assert step.undo_summary.startswith("none:") and "encoding='none'" in step.undo_summary
    report = goex.rollback(run.id, journal=sqlite_journal, on_irreversible="skip")
    assert [o.outcome for o in report.outcomes] == ["irreversible"]
    assert step.status is StepStatus.APPLIED
