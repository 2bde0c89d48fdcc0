"""Policy over the real HTTP domain against a real service on 127.0.0.1: methods, hosts,
URL and path globs, approval of irreversible calls, and the HTTP-call budget."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal
from goex_tools.domains.http import HttpTool, UndoRules
from goex_tools.policy import ApprovalRequest, Policy
from tests.http.service import Service
from tests.support.nginx import Nginx

MakePolicy = Callable[..., Policy]

RULES = """\
default: refuse
irreversible: ask
http:
  rules:
    - methods: [GET]
      hosts: ["127.0.0.1"]
      decision: allow
    - methods: [POST, PUT, PATCH]
      urls: ["http://127.0.0.1:*/items*"]
      decision: allow
    - name: no-deletes
      methods: [DELETE]
      decision: refuse
    - paths: ["/emails"]
      decision: ask
"""


@pytest.fixture
def api(service: Service) -> HttpTool:
    service.state.reset()
    base = service.url
    rules = (
        UndoRules()
        .create(f"{base}/items", item_url=f"{base}/items/{{item_id}}")
        .update(f"{base}/items/{{item_id}}")
        .delete(f"{base}/items/{{item_id}}")
        .irreversible("POST", f"{base}/emails")
    )
    return HttpTool(rules)


def world(service: Service) -> dict[str, Any]:
    return httpx.get(f"{service.url}/_state").json()  # type: ignore[no-any-return]


def refuse_emails(request: ApprovalRequest) -> bool:
    return request.predicted["path"] != "/emails" or "boss" in str(request.proposal.inputs)


def test_methods_hosts_urls_and_paths(
    api: HttpTool, service: Service, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(RULES, approver=refuse_emails)
    base = service.url
    before = world(service)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        created = api.request("POST", f"{base}/items", json={"name": "pen", "price": 2.0})
        item = f"{base}/items/{created.body['id']}"
        api.request("PATCH", item, json={"price": 3.0})
        assert api.request("GET", item).body["price"] == 3.0
        api.request("POST", f"{base}/emails", json={"to": "boss", "subject": "done"})  # approved
        attempts = {
            ("DELETE", item): "no-deletes",
            ("POST", f"{base}/emails"): "http.rules[3]",  # asked, the approver refuses
            ("GET", item.replace("127.0.0.1", "localhost")): "default",  # another host
            ("PUT", f"{base}/other/1"): "default",
        }
        for (method, url), rule in attempts.items():
            body = {"to": "all", "subject": "spam"} if url.endswith("emails") else {"name": "x"}
            with pytest.raises(ActionRefused, match=re.escape(f"rule '{rule}'")):
                api.request(method, url, json=None if method in ("GET", "DELETE") else body)
    after = world(service)
    assert after["items"] == [{**created.body, "price": 3.0}]
    assert [e["to"] for e in after["emails"]] == ["boss"]
    steps = sqlite_journal.steps(run.id)
    assert [(s.status.value, s.decision and s.decision.rule) for s in steps] == [
        ("applied", "http.rules[1]"),
        ("applied", "http.rules[1]"),
        ("applied", "http.rules[0]"),
        ("irreversible", "http.rules[3]"),
        ("refused", "no-deletes"),
        ("refused", "http.rules[3]"),
        ("refused", "default"),
        ("refused", "default"),
    ]
    assert steps[3].decision is not None and steps[3].decision.approved_by == "refuse_emails"
    goex.rollback(run.id, journal=sqlite_journal, on_irreversible="skip")
    # like a database sequence, the service's id counter does not go back
    assert world(service) == {**before, "emails": after["emails"], "next_id": 2}


def test_the_http_call_budget(
    api: HttpTool, service: Service, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file("default: allow\nbudgets:\n  max_http_calls: 2\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        api.request("POST", f"{service.url}/items", json={"name": "a"})
        api.request("GET", f"{service.url}/items")
        with pytest.raises(ActionRefused, match="budget of 2 HTTP calls is spent"):
            api.request("POST", f"{service.url}/items", json={"name": "b"})
    assert [i["name"] for i in world(service)["items"]] == ["a"]


def test_paths_and_urls_are_matched_as_the_server_will_see_them(
    api: HttpTool, service: Service, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """httpx drops `..` segments and the server decodes `%65`: both are matched as `/emails`."""
    gate = policy_file(
        "default: refuse\nirreversible: allow\nhttp:\n  rules:\n"
        '    - {paths: ["/items*"], urls: ["http://127.0.0.1:*/items*"], decision: allow}\n'
        '    - {name: no-email, paths: ["/emails"], decision: refuse}\n'
        '    - {name: not-this-host, hosts: ["LOCALHOST"], decision: refuse}\n'
    )
    base = service.url
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for url in (f"{base}/items/../emails", f"{base}/%65mails", f"{base}/items/./../emails"):
            with pytest.raises(ActionRefused, match="rule 'no-email'"):
                api.request("POST", url, json={"to": "all", "subject": "spam"})
        api.request("POST", f"{base.replace('http', 'HTTP')}/x/../items", json={"name": "ok"})
        with pytest.raises(ActionRefused, match="rule 'not-this-host'"):
            api.request("GET", f"{base.replace('127.0.0.1', 'localhost.')}/items")
    assert world(service)["emails"] == []
    assert [i["name"] for i in world(service)["items"]] == ["ok"]
    assert [s.status.value for s in sqlite_journal.steps(run.id)][:3] == ["refused"] * 3


@pytest.mark.parametrize(
    ("mode", "asked"),
    [
        ("auto", []),
        ("confirm-irreversible", ["/emails"]),
        ("confirm-all", ["/items", "/items", "/emails"]),
    ],
)
def test_approval_modes_over_real_calls(
    api: HttpTool,
    service: Service,
    sqlite_journal: Journal,
    policy_file: MakePolicy,
    mode: str,
    asked: list[str],
) -> None:
    """The hook sees each call it must confirm, with its predicted effect and its undo."""
    requests: list[ApprovalRequest] = []

    def approve(request: ApprovalRequest) -> bool:
        requests.append(request)
        return True

    gate = policy_file(f"default: allow\nirreversible: allow\napproval: {mode}\n", approver=approve)
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        api.request("POST", f"{service.url}/items", json={"name": "pen"})
        api.request("GET", f"{service.url}/items")
        api.request("POST", f"{service.url}/emails", json={"to": "a", "subject": "b"})
    assert [r.predicted["path"] for r in requests] == asked
    for request in requests:
        undo = "none: this action cannot be undone" if request.irreversible else "undo:"
        assert undo in request.describe()
        assert (request.compensation is None) is (
            request.irreversible or request.predicted["method"] == "GET"
        )
    assert len(world(service)["emails"]) == 1


SPELLED_PATHS = [
    "/x/%2e%2e/emails",
    "//emails",
    "/items/x/%2e%2e/%2e%2e/emails",  # allowed by `/items*` as written
    "/items/%2E%2e/./emails",
    "/items/..///emails",
    "/%69tems/%2e%2e/%65mails",
]


def test_http_paths_are_matched_in_the_form_the_server_resolves(
    api: HttpTool, service: Service, nginx: Nginx, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    """nginx decodes, resolves `..` and merges slashes: every spelling reaches `/emails`."""
    for path in SPELLED_PATHS:  # the server really does: each one sends an email
        assert httpx.post(nginx.url + path, json={"to": "t", "subject": path}).is_success
    assert [e["subject"] for e in world(service)["emails"]] == SPELLED_PATHS
    service.state.reset()
    gate = policy_file(
        "default: refuse\nirreversible: allow\nhttp:\n  rules:\n"
        '    - {paths: ["/items*"], decision: allow}\n'
        '    - {name: no-email, paths: ["/emails*"], decision: refuse}\n'
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        for path in SPELLED_PATHS:
            with pytest.raises(ActionRefused, match="rule 'no-email'"):
                api.request("POST", nginx.url + path, json={"to": "all", "subject": "spam"})
        for path in (
            "/items/..%2femails",  # servers differ on %2f
            "/items/%252e%252e/emails",  # decoded twice by some
            "/items/..;/emails",  # Tomcat drops `;...` from a segment
            "/items/%2e%2e/%2e%2e/emails",  # above the root: nginx refuses, others stop at /
        ):
            with pytest.raises(ActionRefused, match=r"rule 'http\.path'"):
                api.request("POST", nginx.url + path, json={"to": "all", "subject": "spam"})
        api.request("POST", nginx.url + "//items", json={"name": "ok"})
    assert world(service)["emails"] == []
    assert [i["name"] for i in world(service)["items"]] == ["ok"]
    statuses = [s.status.value for s in sqlite_journal.steps(run.id)]
    assert statuses == ["refused"] * (len(SPELLED_PATHS) + 4) + ["irreversible"]  # no undo rule


LOOPBACK_SPELLINGS = [
    "2130706433",
    "0x7f000001",
    "127.1",
    "017700000001",
    "0x7f.0.0.1",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "localhost",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_http_host_rule_on_an_address_holds_for_its_other_spellings(
    api: HttpTool, service: Service, sqlite_journal: Journal, policy_file: MakePolicy, host: str
) -> None:
    url = service.url.replace("127.0.0.1", host) + "/items"
    assert httpx.get(url).status_code == 200  # the spelling reaches the service
    gate = policy_file(
        "default: allow\nirreversible: allow\nhttp:\n  rules:\n"
        '    - {name: not-local, hosts: ["127.0.0.1"], decision: refuse}\n'
    )
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate),
        pytest.raises(ActionRefused, match="rule 'not-local'"),
    ):
        api.request("POST", url, json={"name": "sneaky"})
    assert world(service)["items"] == []
