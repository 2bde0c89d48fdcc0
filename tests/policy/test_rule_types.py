"""Every rule type allows, refuses and asks as configured, over the real domains.

One real action per rule type (a file written, a shell command run in bwrap, a row updated in
a SQLite file, a request to a real service on 127.0.0.1), under a policy whose only matching
rule is the one under test, with each verdict: `allow`, `refuse`, and `ask` answered yes and
no by an approval hook. The world is read afterwards to see whether the effect happened, and
the journal to see which rule decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal
from goex_tools.domains.fs import Workspace
from goex_tools.domains.http import HttpTool, UndoRules
from goex_tools.domains.sql import run_sql
from goex_tools.policy import ApprovalRequest, Policy
from tests.http.service import Service
from tests.policy.sqlstate import seed, state

MakePolicy = Callable[..., Policy]


@dataclass
class World:
    ws: Workspace
    db: str
    api: HttpTool
    base: str


@dataclass(frozen=True)
class Case:
    """`policy` holds `{verdict}`; `act` takes one real action; `happened` reads the world."""

    policy: str
    act: Callable[[World], Any]
    happened: Callable[[World], bool]
    rule: str = "under-test"
    default_for_allow: str = "refuse"  # so that `allow` can only come from the rule
    allow_rule: str = "under-test"  # what the journal names when everything allows


def rule(domain: str, match: str) -> str:
    head = f"{domain}:\n  rules:\n    - name: under-test\n"
    return head + f"      {match}\n      decision: {{verdict}}\n"


def write_src(w: World) -> Any:
    return w.ws.write_file("src/new.txt", "x")


def wrote_src(w: World) -> bool:
    return (w.ws.root / "src" / "new.txt").exists()


def echo(w: World) -> Any:
    return w.ws.run_shell("echo hi > out.txt")


def echoed(w: World) -> bool:
    return (w.ws.root / "out.txt").exists()


def restock(w: World) -> Any:
    return run_sql("UPDATE items SET qty = 9 WHERE id = 2", w.db)


def restocked(w: World) -> bool:
    return bool(state(w.db)["items"]["rows"][1][2] == 9)


def create_item(w: World) -> Any:
    return w.api.request("POST", f"{w.base}/items", json={"name": "pen"})


def created(w: World) -> bool:
    return bool(httpx.get(f"{w.base}/_state").json()["items"])


def send_email(w: World) -> Any:
    return w.api.request("POST", f"{w.base}/emails", json={"to": "a", "subject": "b"})


def sent(w: World) -> bool:
    return bool(httpx.get(f"{w.base}/_state").json()["emails"])


CASES = {
    "fs.paths": Case(rule("fs", 'paths: ["src/*.txt"]'), write_src, wrote_src),
    "fs.tools": Case(rule("fs", "tools: [write_file]"), write_src, wrote_src),
    "fs.commands": Case(rule("fs", 'commands: ["echo *"]'), echo, echoed),
    "fs.network": Case(
        "fs:\n  network: {verdict}\n",
        lambda w: w.ws.run_shell("echo hi > out.txt", network=True),
        echoed,
        rule="fs.network",
        default_for_allow="allow",  # network is a confinement check on top of the rules
        allow_rule="default",  # of equal verdicts, the rules' one is reported
    ),
    "sql.kinds": Case(rule("sql", "kinds: [write]"), restock, restocked),
    "sql.tables": Case(rule("sql", 'tables: ["ITEM*"]'), restock, restocked),
    "sql.databases": Case(rule("sql", 'databases: ["sqlite:///*/shop.db"]'), restock, restocked),
    "http.methods": Case(rule("http", "methods: [POST]"), create_item, created),
    "http.hosts": Case(rule("http", 'hosts: ["127.0.0.*"]'), create_item, created),
    "http.urls": Case(rule("http", 'urls: ["http://127.0.0.1:*/items"]'), create_item, created),
    "http.paths": Case(rule("http", 'paths: ["/items"]'), create_item, created),
    "irreversible": Case(
        "irreversible: {verdict}\n",
        send_email,  # the service's emails cannot be unsent: the HTTP domain says so
        sent,
        rule="irreversible",
        default_for_allow="allow",
        allow_rule="default",
    ),
}

OUTCOMES = {  # verdict in the file, the approver's answer -> (effect happened, status)
    "allow": ("allow", None, True),
    "refuse": ("refuse", None, False),
    "ask-approved": ("ask", True, True),
    "ask-refused": ("ask", False, False),
}


@pytest.fixture
def world(workspace: Path, tmp_path: Path, service: Service) -> World:
    service.state.reset()
    db = f"sqlite:///{tmp_path}/shop.db"
    seed(db)
    base = service.url
    undo = UndoRules().create(f"{base}/items", item_url=f"{base}/items/{{item_id}}")
    api = HttpTool(undo.irreversible("POST", f"{base}/emails"))
    return World(Workspace(workspace, store=tmp_path / "store"), db, api, base)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("case_name", CASES)
def test_each_rule_type_allows_refuses_and_asks(
    world: World,
    sqlite_journal: Journal,
    policy_file: MakePolicy,
    case_name: str,
    outcome: str,
) -> None:
    case = CASES[case_name]
    verdict, answer, runs = OUTCOMES[outcome]
    default = case.default_for_allow if verdict == "allow" else "allow"
    asked: list[ApprovalRequest] = []

    def approver(request: ApprovalRequest) -> bool:
        asked.append(request)
        return bool(answer)

    text = f"default: {default}\n" + case.policy.format(verdict=verdict)
    gate = policy_file(text, approver=approver)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        if runs:
            case.act(world)
        else:
            with pytest.raises(ActionRefused, match=f"rule '{case.rule}'"):
                case.act(world)
    assert case.happened(world) is runs
    (step,) = sqlite_journal.steps(run.id)
    deciding = case.allow_rule if verdict == "allow" else case.rule
    assert step.decision is not None and step.decision.rule == deciding
    assert step.decision.allowed is runs and (step.status.value == "refused") is not runs
    assert len(asked) == (verdict == "ask")
    if asked:
        assert asked[0].proposal.domain == case_name.split(".")[0] or case_name == "irreversible"
        assert step.decision.approved_by == ("approver" if answer else None)
