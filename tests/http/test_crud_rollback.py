"""Create / update / delete calls against the real service, then rollback restores it exactly."""

from __future__ import annotations

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal, Reversibility, RollbackFailed, RunStatus, StepStatus
from goex_tools.domains.http import HttpStatusError, HttpTool, UndoRules
from tests.http.conftest import AUTH, TOKEN, seed, state
from tests.http.service import Service

OWNER = {"Authorization": f"Bearer {TOKEN}"}  # someone other than the agent
FAST = goex.RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05)


def agent_session(api: HttpTool, base: str, journal: Journal) -> str:
    """A run that creates, replaces, patches and deletes items."""
    with goex.run("crud", journal=journal) as run:
        created = api.request("POST", f"{base}/items", AUTH, {"name": "new", "tags": ["x"]})
        new_id = created.body["id"]
        api.request("PUT", f"{base}/items/1", AUTH, {"name": "renamed", "price": 9.5})
        api.request("PATCH", f"{base}/items/{new_id}", AUTH, {"price": 3.0})
        api.request("DELETE", f"{base}/items/2", AUTH)
        api.request("GET", f"{base}/items", AUTH)
    return run.id


def test_rollback_restores_the_service_exactly(
    api: HttpTool, service: Service, journal: Journal
) -> None:
    seed(service, {"name": "one", "price": 1.0}, {"name": "two", "tags": ["a", "b"]})
    before = state(service)
    run_id = agent_session(api, service.url, journal)
    after = state(service)
    assert after["items"] == [
        {"id": 1, "name": "renamed", "price": 9.5, "tags": []},
        {"id": 3, "name": "new", "price": 3.0, "tags": ["x"]},
    ]
    steps = journal.steps(run_id)
    assert [(s.tool, s.inputs["method"], s.status) for s in steps] == [
        ("http_request", "POST", StepStatus.APPLIED),
        ("http_request", "PUT", StepStatus.APPLIED),
        ("http_request", "PATCH", StepStatus.APPLIED),
        ("http_request", "DELETE", StepStatus.APPLIED),
        ("http_request", "GET", StepStatus.APPLIED),
    ]
    assert [s.reversibility for s in steps][-1] is Reversibility.NO_EFFECT
    assert [s.effect["status_code"] for s in steps] == [201, 200, 200, 204, 200]

    report = goex.rollback(run_id, journal=journal, retry=FAST)

    assert report.complete and len(report.compensated) == 4
    # next_id is the service's own counter, not state an undo can restore; items are
    assert {**state(service), "next_id": None} == {**before, "next_id": None}
    assert [s.status for s in journal.steps(run_id)][:4] == [StepStatus.COMPENSATED] * 4
    assert journal.get_run(run_id).status is RunStatus.ROLLED_BACK


def test_openapi_inferred_undo_restores_the_service(
    service: Service, sqlite_journal: Journal
) -> None:
    api = HttpTool(UndoRules().add_openapi(f"{service.url}/openapi.json"))
    # no tags on the item deleted: per the document they could not be re-created
    seed(service, {"name": "one", "price": 1.0, "tags": ["a"]}, {"name": "two"})
    before = state(service)
    proposal = api.classify("DELETE", f"{service.url}/items/2", AUTH)
    assert proposal.predicted == {
        "method": "DELETE",
        "url": f"{service.url}/items/2",
        "host": "127.0.0.1",
        "path": "/items/2",
        "compensation_source": "openapi",
        "action": "delete",
    }
    run_id = agent_session(api, service.url, sqlite_journal)
    assert state(service) != before
    goex.rollback(run_id, journal=sqlite_journal, retry=FAST)
    assert state(service)["items"] == before["items"]


def test_recreate_by_post_to_the_collection(service: Service, sqlite_journal: Journal) -> None:
    base = service.url
    api = HttpTool(
        UndoRules().delete(
            f"{base}/items/{{item_id}}", recreate_method="POST", recreate_url=f"{base}/items"
        )
    )
    seed(service, {"name": "one", "price": 1.0, "tags": ["t"]})
    before = state(service)
    with goex.run(journal=sqlite_journal) as run:
        api.request("DELETE", f"{base}/items/1", AUTH)
    assert state(service)["items"] == []
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service) == before


def test_rollback_of_the_last_step_only(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    seed(service, {"name": "one"})
    with goex.run(journal=sqlite_journal) as run:
        api.request("PATCH", f"{service.url}/items/1", AUTH, {"name": "first"})
        api.request("PATCH", f"{service.url}/items/1", AUTH, {"name": "second"})
    goex.rollback(run.id, steps=1, journal=sqlite_journal)
    assert state(service)["items"] == [{"id": 1, "name": "first", "price": 0.0, "tags": []}]
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service)["items"] == [{"id": 1, "name": "one", "price": 0.0, "tags": []}]


def test_put_that_creates_is_undone_by_delete(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    before = state(service)
    with goex.run(journal=sqlite_journal) as run:
        api.request("PUT", f"{service.url}/items/7", AUTH, {"name": "upserted"})
    assert [i["id"] for i in state(service)["items"]] == [7]
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service)["items"] == before["items"]


def test_a_conflicting_change_stops_the_undo_until_forced(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    seed(service, {"name": "one"})
    with goex.run(journal=sqlite_journal) as run:
        api.request("PUT", f"{service.url}/items/1", AUTH, {"name": "agent"})
    httpx.put(
        f"{service.url}/items/1", json={"name": "someone else"}, headers=OWNER
    ).raise_for_status()
    changed = state(service)

    with pytest.raises(RollbackFailed) as failure:
        goex.rollback(run.id, journal=sqlite_journal)
    outcome = failure.value.report.outcomes[0]
    assert outcome.outcome == "conflict"
    assert "changed since the step" in outcome.detail and "someone else" in outcome.detail
    assert state(service) == changed
    assert sqlite_journal.steps(run.id)[0].status is StepStatus.COMPENSATION_FAILED

    goex.rollback(run.id, journal=sqlite_journal, force=True)
    assert state(service)["items"] == [{"id": 1, "name": "one", "price": 0.0, "tags": []}]


def test_an_undo_already_done_by_someone_else_is_not_repeated(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    with goex.run(journal=sqlite_journal) as run:
        created = api.request("POST", f"{service.url}/items", AUTH, {"name": "tmp"})
    httpx.delete(f"{service.url}/items/{created.body['id']}", headers=OWNER).raise_for_status()
    requests_before = len(service.state.requests)
    goex.rollback(run.id, journal=sqlite_journal)
    assert service.state.requests[requests_before:] == [f"GET /items/{created.body['id']}"]
    assert sqlite_journal.steps(run.id)[0].status is StepStatus.COMPENSATED


def test_a_failed_call_is_journaled_failed_and_changes_nothing(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    seed(service, {"name": "one"})
    before = state(service)
    with goex.run(journal=sqlite_journal) as run, pytest.raises(HttpStatusError) as failure:
        api.request("PUT", f"{service.url}/items/1", AUTH, {"price": "not a number"})
    assert failure.value.status_code == 422
    assert "answered 422" in str(failure.value)
    step = sqlite_journal.steps(run.id)[0]
    assert step.status is StepStatus.FAILED and step.effect["status_code"] == 422
    assert state(service) == before
    assert goex.plan(sqlite_journal, run.id) == []


def test_an_error_answer_to_a_call_that_took_effect_is_journaled_applied(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    seed(service, {"name": "one"})
    before = state(service)
    fault = {"method": "PATCH", "path": "/items/1", "status": 500, "after": True}
    httpx.post(f"{service.url}/_faults", json=fault).raise_for_status()
    with goex.run(journal=sqlite_journal) as run, pytest.raises(HttpStatusError):
        api.request("PATCH", f"{service.url}/items/1", AUTH, {"name": "changed"})
    assert state(service)["items"][0]["name"] == "changed"
    step = sqlite_journal.steps(run.id)[0]
    assert step.status is StepStatus.APPLIED
    assert step.notes[-1].startswith("raised HttpStatusError: PATCH")
    assert step.notes[-1].endswith("but its effect happened; it can be undone")
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service) == before


def test_deleting_an_item_whose_sub_items_cannot_be_recreated_says_so_first(
    service: Service, sqlite_journal: Journal
) -> None:
    """Per the document, /items/{id}/tags can be listed but not re-created: deleting an item
    that has tags is marked not undoable before it is sent; one without tags is undone."""
    seed(service, {"name": "tagged", "tags": ["a", "b"]}, {"name": "bare"})
    api = HttpTool(UndoRules().add_openapi(f"{service.url}/openapi.json"))
    with goex.run(journal=sqlite_journal) as run:
        api.request("DELETE", f"{service.url}/items/1", AUTH)
        api.request("DELETE", f"{service.url}/items/2", AUTH)
    tagged, bare = sqlite_journal.steps(run.id)
    assert bare.notes == [] and bare.compensation is not None
    assert tagged.notes == [
        f"this step cannot be undone: {service.url}/items/1/tags holds 2 items, which "
        f"deleting {service.url}/items/1 may delete too, and the API gives no way to "
        f"re-create them"
    ]
    report = goex.rollback(run.id, journal=sqlite_journal, on_irreversible="skip")
    assert [o.outcome for o in report.outcomes] == ["compensated", "irreversible"]
    assert [i["name"] for i in state(service)["items"]] == ["bare"]
