"""Calls are classified before they are sent: reversible by which undo, irreversible, or a read."""

from __future__ import annotations

from typing import Any

import pytest

import goex_tools as goex
from goex_tools import (
    ActionRefused,
    Compensation,
    Decision,
    Journal,
    Proposal,
    Reversibility,
    RunContext,
    StepStatus,
)
from goex_tools.domains.http import HttpCall, HttpTool, InvalidHttpCall, UndoCall, UndoRules, revert
from goex_tools.policy import LLMUndoProposer, Policy, PolicyConfig
from tests.http.conftest import AUTH, registered_rules, state
from tests.http.service import Service
from tests.policy.models import undo_model


class RecordingGate:
    """Refuses irreversible calls; records what it saw and what the service had received."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.seen: list[tuple[Proposal, list[str]]] = []

    def decide(self, proposal: Proposal, run: RunContext) -> Decision:
        self.seen.append((proposal, list(self.service.state.requests)))
        if proposal.reversibility is Reversibility.IRREVERSIBLE:
            return Decision(allowed=False, rule="no-irreversible", reason="cannot be undone")
        return Decision(allowed=True)


def test_an_irreversible_call_is_classified_and_refused_before_it_is_sent(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    gate = RecordingGate(service)
    email = {"to": "a@example.com", "subject": "hi"}
    with goex.run(journal=sqlite_journal, gate=gate) as run:
        api.request("PUT", f"{service.url}/items/1", AUTH, {"name": "x"})
        with pytest.raises(ActionRefused, match="no-irreversible"):
            api.request("POST", f"{service.url}/emails", AUTH, email)
    (put, received_before_put), (mail, received_before_mail) = gate.seen
    assert received_before_put == []  # decided before anything was sent, even the GET
    assert put.reversibility is Reversibility.REVERSIBLE
    assert put.compensation is not None
    assert put.compensation.description == (
        f"PUT {service.url}/items/1 back to the state read just before"
    )
    assert mail.reversibility is Reversibility.IRREVERSIBLE and mail.compensation is None
    assert mail.predicted == {
        "method": "POST",
        "url": f"{service.url}/emails",
        "host": "127.0.0.1",
        "path": "/emails",
        "compensation_source": None,
        "action": "irreversible",
    }
    assert mail.notes == ["POST /emails is registered as irreversible"]
    assert received_before_mail == ["GET /items/1", "PUT /items/1", "GET /items/1"]
    assert state(service)["emails"] == []
    assert [s.status for s in sqlite_journal.steps(run.id)] == [
        StepStatus.APPLIED,
        StepStatus.REFUSED,
    ]


def test_an_allowed_irreversible_call_stops_a_rollback(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    with goex.run(journal=sqlite_journal) as run:
        api.request("POST", f"{service.url}/items", AUTH, {"name": "x"})
        api.request("POST", f"{service.url}/emails", {}, {"to": "a@example.com", "subject": "s"})
    assert [s.status for s in sqlite_journal.steps(run.id)] == [
        StepStatus.APPLIED,
        StepStatus.IRREVERSIBLE,
    ]
    with pytest.raises(goex.RollbackFailed, match="irreversible step"):
        goex.rollback(run.id, journal=sqlite_journal)
    goex.rollback(run.id, journal=sqlite_journal, on_irreversible="skip")
    assert state(service)["items"] == []
    assert state(service)["emails"] == [{"to": "a@example.com", "subject": "s"}]


def test_calls_no_rule_covers_are_irreversible_and_reads_have_no_effect(
    service: Service,
) -> None:
    api = HttpTool()
    uncovered = api.classify("POST", f"{service.url}/items", AUTH, {"name": "x"})
    assert uncovered.reversibility is Reversibility.IRREVERSIBLE
    assert uncovered.notes == ["no registered pair or OpenAPI operation covers POST /items"]
    read = api.classify("get", f"{service.url}/items", AUTH)
    assert read.reversibility is Reversibility.NO_EFFECT and read.predicted["method"] == "GET"
    assert read.predicted["compensation_source"] is None


def test_registered_rules_win_over_openapi(service: Service) -> None:
    rules = UndoRules().add_openapi(f"{service.url}/openapi.json")
    rules.delete(
        f"{service.url}/items/{{item_id}}",
        recreate_method="POST",
        recreate_url=f"{service.url}/items",
    )
    proposal = HttpTool(rules).classify("DELETE", f"{service.url}/items/4", AUTH)
    assert proposal.predicted["compensation_source"] == "registered"
    assert proposal.compensation is not None
    assert proposal.compensation.args["call"]["method"] == "POST"


def test_bad_input_is_refused_with_a_clear_error(api: HttpTool, service: Service) -> None:
    with pytest.raises(InvalidHttpCall, match="invalid http_request method: Value error"):
        api.request("FETCH", f"{service.url}/items")
    with pytest.raises(InvalidHttpCall, match="absolute http:// or https:// URL"):
        api.request("GET", "/items")
    assert service.state.requests == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (object(), "json: object is not JSON data"),
        ({"a": [1, {"b": object()}]}, "json.a[1].b: object is not JSON data"),
        ({("x", 1): 2}, "json: the key ('x', 1) is a tuple, not a string"),
        ({"n": float("nan")}, "json.n: nan is not a JSON number"),
        ({"s": {1, 2}}, "json.s: set is not JSON data"),
        ({"b": b"raw"}, "json.b: bytes is not JSON data"),
    ],
)
def test_a_body_that_is_not_json_data_is_refused_naming_the_field(
    api: HttpTool, service: Service, sqlite_journal: Journal, body: object, where: str
) -> None:
    with goex.run(journal=sqlite_journal) as run, pytest.raises(InvalidHttpCall) as refused:
        api.request("POST", f"{service.url}/items", AUTH, body)
    assert str(refused.value) == f"invalid http_request {where}"
    assert service.state.requests == [] and sqlite_journal.steps(run.id) == []


def propose_delete(call: HttpCall) -> Compensation | None:
    """Stands in for an LLM: proposes deleting what a PUT on an unknown API created."""
    if call.method != "PUT":
        return None
    return revert(
        UndoCall(method="DELETE", url=call.url),
        headers=call.headers,
        check_url=call.url,
        before=None,
        description="LLM: delete what the PUT made",
    )


def test_a_verified_llm_undo_is_used_and_marked(service: Service, sqlite_journal: Journal) -> None:
    checked: list[tuple[str, str]] = []

    def verifier(call: HttpCall, candidate: Compensation) -> bool:
        checked.append((call.method, candidate.description))
        return True

    api = HttpTool(proposer=propose_delete, verifier=verifier)
    before = state(service)
    with goex.run(journal=sqlite_journal) as run:
        api.request("PUT", f"{service.url}/items/9", AUTH, {"name": "nine"})
    step = sqlite_journal.steps(run.id)[0]
    assert checked == [("PUT", "LLM: delete what the PUT made")]
    assert step.effect["predicted"]["compensation_source"] == "llm"
    assert step.notes == ["undo proposed by an LLM, verified"]
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service)["items"] == before["items"]


@pytest.mark.parametrize("verifier", [None, lambda call, candidate: False])
def test_an_unverified_llm_undo_leaves_the_call_irreversible(
    service: Service, verifier: Any
) -> None:
    api = HttpTool(proposer=propose_delete, verifier=verifier)
    proposal = api.classify("PUT", f"{service.url}/items/9", AUTH, {"name": "nine"})
    assert proposal.reversibility is Reversibility.IRREVERSIBLE
    assert proposal.compensation is None
    assert proposal.notes == [
        "no registered pair or OpenAPI operation covers PUT /items/9; "
        "the proposed undo (http.revert) was not verified"
    ]


def test_the_policy_gate_leaves_an_uncovered_call_irreversible_without_a_tested_undo(
    service: Service, sqlite_journal: Journal
) -> None:
    """The policy's LLM-undo path has no test-bed for REST calls: an uncovered POST is not
    given an untested undo, so `irreversible: refuse` refuses it before anything is sent;
    a call a registered pair covers passes and is undone."""
    model, _ = undo_model(f'{{"undo": "DELETE {service.url}/items/1", "explanation": "x"}}')
    gate = Policy(
        PolicyConfig(default="allow", irreversible="refuse"),
        undo_proposer=LLMUndoProposer(model),
    )
    base = service.url
    covered = HttpTool(registered_rules(base))
    with goex.run(journal=sqlite_journal, gate=gate) as run:
        with pytest.raises(ActionRefused, match="http_request cannot be undone"):
            HttpTool().request("POST", f"{base}/items", AUTH, {"name": "x"})
        assert service.state.requests == []
        covered.request("POST", f"{base}/items", AUTH, {"name": "kept"})
    steps = sqlite_journal.steps(run.id)
    assert [s.status for s in steps] == [StepStatus.REFUSED, StepStatus.APPLIED]
    assert steps[0].compensation is None
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service)["items"] == []
