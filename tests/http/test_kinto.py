"""Against Kinto (PyPI), with the rules inferred from its own Swagger 2.0 document.

Kinto nests records in collections in buckets, deletes a collection's records with it, sets
`data.last_modified` and an ETag on every write, keeps accounts whose password it gives back
only as a bcrypt hash, and answers 403 for a bucket that does not exist.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.cli import main
from goex_tools.domains.http import ChildRule, HttpTool, UndoRules, rules_from_openapi
from goex_tools.domains.http.fields import PRESENT
from tests.http.leaks import file_leaks, leaks
from tests.http.third_party import (
    KINTO_BASIC,
    KINTO_PASSWORD,
    Server,
    kinto,
    kinto_auth,
    kinto_state,
)

AGENT = {"Authorization": "Basic {{secret:kinto}}"}
SERVER_SET = ["data.last_modified"]  # the only fields that may differ after a rollback
FAST = goex.RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.05)


@pytest.fixture(scope="module")
def kinto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from kinto(tmp_path_factory.mktemp("kinto"))


@pytest.fixture
def url(kinto_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("GOEX_SECRET_KINTO", KINTO_BASIC)
    monkeypatch.setenv("GOEX_SECRET_KINTO_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "none.toml"))
    return kinto_server.url


@pytest.fixture
def api(url: str) -> HttpTool:
    return HttpTool(UndoRules().add_openapi(f"{url}/__api__"))


def put(url: str, path: str, body: dict[str, Any]) -> Any:
    """The world before the agent: written by the test with the admin's credentials."""
    response = httpx.put(f"{url}{path}", json=body, headers=kinto_auth())
    response.raise_for_status()
    return response.json()


def comparable(state: Any) -> Any:
    """`state` with the values of SERVER_SET (at any depth of the dump) left out."""
    if isinstance(state, dict):
        return {
            k: PRESENT if k == "last_modified" and "id" in state else comparable(v)
            for k, v in state.items()
        }
    if isinstance(state, list):
        return [comparable(v) for v in state]
    return state


def seed(url: str) -> str:
    """Two buckets with collections, records and a group; an account with an email."""
    shop, blog = f"shop-{uuid.uuid4().hex[:8]}", f"blog-{uuid.uuid4().hex[:8]}"
    for bucket in (shop, blog):
        put(url, f"/buckets/{bucket}", {"data": {"title": bucket}})
    put(url, f"/buckets/{shop}/collections/items", {"data": {"kind": "stock"}})
    for n in range(1, 4):
        body = {"data": {"title": f"item {n}", "price": n, "tags": ["x"] * n}}
        put(url, f"/buckets/{shop}/collections/items/records/r{n}", body)
    put(url, f"/buckets/{shop}/groups/staff", {"data": {"members": ["account:admin"]}})
    put(url, f"/buckets/{blog}/collections/posts", {"data": {}})
    for n in range(1, 3):
        put(url, f"/buckets/{blog}/collections/posts/records/p{n}", {"data": {"text": f"p{n}"}})
    put(url, f"/buckets/{blog}/groups/authors", {"data": {"members": []}})
    return shop + " " + blog


def test_kinto_rules_come_from_its_swagger_document(url: str) -> None:
    rules = rules_from_openapi(f"{url}/__api__")
    delete_bucket = next(
        r for r in rules if r.action == "delete" and r.url == f"{url}/buckets/{{id}}"
    )
    assert delete_bucket.children == [
        ChildRule(
            suffix="/collections",
            items_field="data",
            children=[ChildRule(suffix="/records", items_field="data")],
        ),
        ChildRule(suffix="/groups", items_field="data"),
    ]
    create_record = next(
        r
        for r in rules
        if r.action == "create" and r.url.endswith("/collections/{collection_id}/records")
    )
    assert create_record.id_field == ""  # the schema names no id: `data.id` is found


def test_kinto_workload_rolls_back_to_the_exact_state(
    url: str,
    api: HttpTool,
    sqlite_journal: Journal,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Creates, updates and deletes over nested resources; only `data.last_modified`
    (server-set on every write, see SERVER_SET) may differ afterwards."""
    caplog.set_level(logging.DEBUG)
    shop, blog = seed(url).split()
    before = kinto_state(url)
    fresh = f"new-{uuid.uuid4().hex[:8]}"
    items = f"{url}/buckets/{shop}/collections/items/records"
    etag = httpx.get(f"{items}/r1", headers=kinto_auth()).headers["etag"]
    results = []
    with goex.run("kinto", journal=sqlite_journal) as run:
        for method, path, headers, body in [
            ("PUT", f"/buckets/{fresh}", {}, {"data": {"title": "made"}}),  # 403 before
            ("PUT", f"/buckets/{fresh}/collections/c", {}, {"data": {}}),  # 404 before
            ("POST", f"/buckets/{fresh}/collections/c/records", {}, {"data": {"v": 1}}),
            ("POST", f"/buckets/{shop}/collections/items/records", {}, {"data": {"v": 2}}),
            (
                "PUT",
                f"/buckets/{shop}/collections/items/records/r1",
                {"If-Match": etag},
                {"data": {"title": "replaced"}},
            ),
            (
                "PUT",
                f"/buckets/{shop}/collections/items/records/r9",
                {"If-None-Match": "*"},
                {"data": {"title": "made by PUT"}},
            ),
            ("PATCH", f"/buckets/{shop}/collections/items/records/r2", {}, {"data": {"price": 99}}),
            ("PATCH", f"/buckets/{shop}", {}, {"data": {"title": "renamed"}}),
            ("DELETE", f"/buckets/{shop}/collections/items/records/r3", {}, None),
            ("DELETE", f"/buckets/{shop}/groups/staff", {}, None),
            ("DELETE", f"/buckets/{shop}/collections/items", {}, None),  # 2 records left
            ("DELETE", f"/buckets/{blog}", {}, None),  # a collection, 2 records, a group
        ]:
            results.append(api.request(method, url + path, {**AGENT, **headers}, body))
    steps = sqlite_journal.steps(run.id)
    assert [s.status for s in steps] == [StepStatus.APPLIED] * 12, [s.notes for s in steps]
    assert all(s.reversibility is Reversibility.REVERSIBLE for s in steps)
    assert [s.compensation.args["call"]["method"] for s in steps if s.compensation] == [
        *["DELETE"] * 4,
        "PUT",
        "DELETE",
        "PUT",
        "PUT",
        *["PUT"] * 4,
    ]
    assert blog not in kinto_state(url)["buckets"]

    report = goex.rollback(run.id, journal=sqlite_journal, retry=FAST)

    assert report.complete and len(report.compensated) == 12
    after = kinto_state(url)
    assert comparable(after) == comparable(before)
    differing = sorted(_differences(before, after))
    assert differing and {path.rsplit(".", 2)[-2:][0] for path in differing} <= {"data"}
    assert {path.rsplit(".", 1)[-1] for path in differing} == {"last_modified"}

    shown = "".join(r.model_dump_json() for r in results)
    out = io.StringIO()
    with redirect_stdout(out):
        main(["--journal", sqlite_journal.url, "show", run.id, "--json"])
    for text in (shown, out.getvalue(), caplog.text):
        assert leaks(text, KINTO_BASIC) == []
    assert file_leaks(tmp_path, KINTO_BASIC) == []


def _differences(a: Any, b: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            yield from _differences(a.get(key), b.get(key), f"{prefix}.{key}")
    elif a != b:
        yield prefix


def test_kinto_password_change_is_irreversible_before_it_is_sent(
    url: str, api: HttpTool, sqlite_journal: Journal
) -> None:
    """Kinto gives a password back as its bcrypt hash: writing that back would set the hash
    as the new password."""
    name = f"u{uuid.uuid4().hex[:8]}"
    httpx.put(f"{url}/accounts/{name}", json={"data": {"password": "old-passw0rd"}})
    member = {"Authorization": "Basic {{secret:kinto}}"}
    proposal = api.classify(
        "PATCH", f"{url}/accounts/{name}", member, {"data": {"password": "new-passw0rd"}}
    )
    assert proposal.reversibility is Reversibility.IRREVERSIBLE
    assert "sets data.password" in proposal.notes[0] and "write-only" in proposal.notes[0]


def test_kinto_account_update_journals_no_password_hash_and_undoes_by_patch(
    url: str, api: HttpTool, sqlite_journal: Journal
) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    put_account = httpx.put(
        f"{url}/accounts/{name}",
        json={"data": {"password": "old-passw0rd", "email": "a@example.com"}},
    )
    put_account.raise_for_status()
    own = httpx.BasicAuth(name, "old-passw0rd")
    before = httpx.get(f"{url}/accounts/{name}", auth=own).json()
    assert before["data"]["password"].startswith("$2")  # the stored hash
    with goex.run(journal=sqlite_journal) as run:
        api.request("PATCH", f"{url}/accounts/{name}", AGENT, {"data": {"email": "b@x.org"}})
    step = sqlite_journal.steps(run.id)[0]
    assert step.compensation is not None
    assert step.compensation.args["call"]["method"] == "PATCH"  # PUT would need the password
    assert before["data"]["password"] not in json.dumps(step.compensation.args)
    goex.rollback(run.id, journal=sqlite_journal)
    restored = httpx.get(f"{url}/accounts/{name}", auth=own)  # the old password still works
    assert restored.status_code == 200
    assert restored.json()["data"]["email"] == "a@example.com"
    assert restored.json()["data"]["password"] == before["data"]["password"]


def test_kinto_account_delete_is_marked_not_undoable_before_it_is_sent(
    url: str, api: HttpTool, sqlite_journal: Journal
) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    httpx.put(f"{url}/accounts/{name}", json={"data": {"password": "old-passw0rd"}})
    shop = seed(url).split()[0]
    with goex.run(journal=sqlite_journal) as run:
        api.request("PATCH", f"{url}/buckets/{shop}", AGENT, {"data": {"title": "t"}})
        api.request("DELETE", f"{url}/accounts/{name}", AGENT)
    deleted = sqlite_journal.steps(run.id)[1]
    assert deleted.notes == [
        f"this step cannot be undone: re-creating {url}/accounts/{name} would need "
        f"data.password, which the service gives back only as it stores it (write-only), "
        f"not as it was set"
    ]
    report = goex.rollback(run.id, journal=sqlite_journal, on_irreversible="skip")
    assert [o.outcome for o in report.outcomes] == ["irreversible", "compensated"]
    assert KINTO_PASSWORD not in json.dumps([s.model_dump(mode="json") for s in [deleted]])
