"""The GitHub pack against GitHub's own OpenAPI description: Stoplight Prism serves it as a
validating mock, and every forward call and every undo the pack makes is a request Prism
accepts (method, path, parameters, body schema). Prism answers with the document's examples,
so these tests check the shape of the calls, not what GitHub does with them (that is
`test_exact_pairs.py`, on a service that keeps state)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal, Reversibility, Step, StepStatus
from goex_tools.domains.http import HttpTool, RevertArgs
from goex_tools.domains.http.packs import github
from goex_tools.domains.http.send import client_for, request, unconditional
from goex_tools.domains.http.undo import undo_request
from goex_tools.secrets import default_store
from tests.http.github.spec import violations

TOKEN = "ghp_0123456789abcdefGHIJKLmnop"
AUTH = {"Authorization": "Bearer {{secret:github}}", "Accept": "application/json"}
SHA = "aa218f56b14c9653891f9e74264a383fa43fefbd"


@pytest.fixture
def api(prism_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HttpTool:
    monkeypatch.setenv("GOEX_SECRET_GITHUB", TOKEN)
    monkeypatch.setenv("GOEX_SECRET_GITHUB_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "none.toml"))
    return HttpTool(github.rules(prism_url))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    store = Journal(f"sqlite:///{tmp_path}/journal.db")
    yield store
    store.close()


def sent(api: HttpTool, journal: Journal, method: str, path: str, body: Any = None) -> Step:
    """The step of one call the agent makes through goex (its body checked by Prism)."""
    url = api.rules.rules[0].url.split("/repos/")[0] + path
    with goex.run("agent", journal=journal) as run:
        result = api.request(method, url, headers=AUTH, json=body)
    assert violations(result.headers) == []
    (step,) = journal.steps(run.id)
    assert step.status in (StepStatus.APPLIED, StepStatus.IRREVERSIBLE), step.error
    return step


def undo_of(step: Step) -> httpx.Response:
    """Send the step's undo as a rollback would (its precondition from the state read now)."""
    assert step.compensation is not None
    args = RevertArgs.model_validate(step.compensation.args)
    assert args.unavailable is None, args.unavailable
    client = client_for(args.timeout)
    headers = unconditional(args.headers)
    current = args.read(client, args.check_url, headers) if args.check_url else None
    call = undo_request(args, args.call, headers, current, args.call.url == args.check_url)
    response = request(client, call, default_store())
    assert response.status_code < 400, f"Prism refused the undo {call}: {response.text}"
    assert violations(response.headers) == []
    return response


PAIRS = [  # (method, path, body, label, the undo's method and path, fields of its body)
    (
        "POST",
        "/repos/o/r/issues",
        {"title": "Found a bug", "body": "It breaks", "labels": ["bug"]},
        "semantic",
        ("PATCH", "/repos/o/r/issues/1347"),
        {"state": "closed", "state_reason": "not_planned"},
    ),
    (
        "PATCH",
        "/repos/o/r/issues/1347",
        {"title": "Renamed", "labels": ["wontfix"], "assignees": ["hubot"], "milestone": 2},
        "exact",
        ("PATCH", "/repos/o/r/issues/1347"),
        {"title", "body", "state", "labels", "assignees", "milestone"},
    ),
    (
        "POST",
        "/repos/o/r/pulls",
        {"title": "Amazing", "head": "octocat:new-feature", "base": "master"},
        "semantic",
        ("PATCH", "/repos/o/r/pulls/1347"),
        {"state": "closed"},
    ),
    (
        "PATCH",
        "/repos/o/r/pulls/1347",
        {"title": "Renamed", "base": "main"},
        "exact",
        ("PATCH", "/repos/o/r/pulls/1347"),
        {"title", "body", "state", "base"},
    ),
    (
        "POST",
        "/repos/o/r/issues/1347/labels",
        {"labels": ["bug", "enhancement"]},
        "exact",
        ("PUT", "/repos/o/r/issues/1347/labels"),
        {"labels"},
    ),
    ("PUT", "/repos/o/r/issues/1347/labels", {"labels": ["bug"]}, "exact", ("PUT", None), None),
    ("DELETE", "/repos/o/r/issues/1347/labels", None, "exact", ("PUT", None), None),
    (
        "DELETE",
        "/repos/o/r/issues/1347/labels/bug",
        None,
        "exact",
        ("PUT", "/repos/o/r/issues/1347/labels"),
        {"labels"},
    ),
    (
        "POST",
        "/repos/o/r/issues/1347/assignees",
        {"assignees": ["hubot"]},
        "exact",
        ("PATCH", "/repos/o/r/issues/1347"),
        {"assignees"},
    ),
    ("DELETE", "/repos/o/r/issues/1347/assignees", {"assignees": ["hubot"]}, "exact", None, None),
    (
        "POST",
        "/repos/o/r/issues/1347/comments",
        {"body": "Me too"},
        "exact",
        ("DELETE", "/repos/o/r/issues/comments/1"),
        None,
    ),
    (
        "PATCH",
        "/repos/o/r/issues/comments/1",
        {"body": "Edited"},
        "exact",
        ("PATCH", "/repos/o/r/issues/comments/1"),
        {"body"},
    ),
    (
        "POST",
        "/repos/o/r/git/refs",
        {"ref": "refs/heads/featureA", "sha": SHA},
        "exact",
        ("DELETE", "/repos/o/r/git/refs/heads%2FfeatureA"),
        None,
    ),
    (
        "PATCH",
        "/repos/o/r/git/refs/heads%2FfeatureA",
        {"sha": SHA, "force": False},
        "exact",
        ("PATCH", "/repos/o/r/git/refs/heads%2FfeatureA"),
        {"sha", "force"},
    ),
    (
        "DELETE",
        "/repos/o/r/git/refs/heads%2FfeatureA",
        None,
        "exact",
        ("POST", "/repos/o/r/git/refs"),
        {"ref", "sha"},
    ),
    (
        "PUT",
        "/repos/o/r/contents/notes.md",
        {"message": "edit", "content": "aGVsbG8=", "sha": SHA, "branch": "main"},
        "exact",
        ("PUT", "/repos/o/r/contents/notes.md"),
        {"message", "content", "sha", "branch"},
    ),
    (
        "DELETE",
        "/repos/o/r/contents/notes.md",
        {"message": "remove", "sha": SHA},
        "exact",
        ("PUT", "/repos/o/r/contents/notes.md"),
        {"message", "content", "sha"},
    ),
    (
        "POST",
        "/repos/o/r/releases",
        {"tag_name": "v1.0.0", "name": "v1.0.0", "body": "First"},
        "semantic",
        ("DELETE", "/repos/o/r/releases/1"),
        None,
    ),
    (
        "PATCH",
        "/repos/o/r/releases/1",
        {"name": "v1.0.1", "body": "Better"},
        "exact",
        ("PATCH", "/repos/o/r/releases/1"),
        {"name", "body", "prerelease"},
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "label", "undo", "fields"),
    PAIRS,
    ids=[f"{p[0]} {p[1]}" for p in PAIRS],
)
def test_github_pair_sends_calls_and_undos_the_document_accepts(
    api: HttpTool,
    journal: Journal,
    method: str,
    path: str,
    body: Any,
    label: str,
    undo: tuple[str, str | None] | None,
    fields: Any,
) -> None:
    step = sent(api, journal, method, path, body)
    assert step.reversibility is Reversibility(label)
    assert step.compensation is not None
    args = RevertArgs.model_validate(step.compensation.args)
    if undo is not None:
        want_method, want_path = undo
        assert args.call.method == want_method
        if want_path is not None:
            assert httpx.URL(args.call.url).raw_path.decode() == want_path
    response = undo_of(step)
    assert response.status_code < 300
    if isinstance(fields, dict):
        assert args.call.json_body == fields
    elif isinstance(fields, set):
        sent_body = undo_request(args, args.call, {}, None, False).body
        assert set(sent_body) - {"sha"} <= fields <= set(sent_body) | {"sha"}


IRREVERSIBLE = [
    ("PUT", "/repos/o/r/pulls/1347/merge", {"merge_method": "squash"}),
    ("POST", "/repos/o/r/merges", {"base": "master", "head": "cool_feature"}),
    ("PATCH", "/repos/o/r/git/refs/heads%2FfeatureA", {"sha": SHA, "force": True}),
    ("DELETE", "/repos/o/r", None),
    ("DELETE", "/repos/o/r/issues/comments/1", None),
    ("PUT", "/notifications", {"read": True}),
    ("POST", "/repos/o/r/dispatches", {"event_type": "on-demand-test"}),
    ("PATCH", "/repos/o/r/issues/1347", {"title": "t", "type": "Bug"}),
    ("PATCH", "/repos/o/r/releases/1", {"draft": False}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), IRREVERSIBLE, ids=[f"{m} {p}" for m, p, _ in IRREVERSIBLE]
)
def test_github_calls_that_cannot_be_undone_are_irreversible_before_they_are_sent(
    api: HttpTool, journal: Journal, method: str, path: str, body: Any
) -> None:
    base = api.rules.rules[0].url.split("/repos/")[0]
    proposal = api.classify(method, base + path, headers=AUTH, json=body)
    assert proposal.reversibility is Reversibility.IRREVERSIBLE and proposal.compensation is None
    step = sent(api, journal, method, path, body)  # and Prism accepts the call itself
    assert step.status is StepStatus.IRREVERSIBLE


INVALID = [  # what GitHub's document forbids, and Prism must refuse for the tests to mean much
    ("POST", "/repos/o/r/issues", {"body": "no title"}),
    ("PATCH", "/repos/o/r/issues/1347", {"state": "gone"}),
    ("PATCH", "/repos/o/r/issues/1347", {"milestone": [1]}),
    ("POST", "/repos/o/r/git/refs", {"ref": "refs/heads/x"}),
    ("PUT", "/repos/o/r/contents/notes.md", {"content": "aGVsbG8="}),
    ("PUT", "/repos/o/r/issues/1347/labels", {"labels": 5}),
    ("PATCH", "/repos/o/r/issues/comments/1", {"body": 5}),
]


@pytest.mark.parametrize(("method", "path", "body"), INVALID, ids=[p[1] for p in INVALID])
def test_prism_refuses_requests_the_github_document_forbids(
    prism_url: str, method: str, path: str, body: Any
) -> None:
    response = httpx.request(method, prism_url + path, json=body, timeout=30)
    assert response.status_code in (400, 422), response.text
