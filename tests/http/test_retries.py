"""Compensating calls are retried on 503 / 429 (Retry-After); one that keeps failing is reported."""

from __future__ import annotations

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.domains.http import HttpTool
from tests.http.conftest import AUTH, TOKEN, registered_rules, state
from tests.http.service import Service

FAST = goex.RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02)


def create_one(api: HttpTool, service: Service, journal: Journal) -> tuple[str, int]:
    with goex.run(journal=journal) as run:
        created = api.request("POST", f"{service.url}/items", AUTH, {"name": "tmp"})
    return run.id, created.body["id"]


def fail_next(service: Service, method: str, path: str, status: int, times: int, **kw: str) -> None:
    fault = {"method": method, "path": path, "status": status, "times": times, **kw}
    httpx.post(f"{service.url}/_faults", json=fault).raise_for_status()


def transient_notes(journal: Journal, step_id: str) -> list[str]:
    return [e.detail for e in journal.events(step_id) if "failed transiently" in e.detail]


@pytest.mark.parametrize(
    ("status", "retry_after"), [(503, None), (429, "0.05"), (502, None), (504, "0")]
)
def test_transient_failures_of_an_undo_are_retried(
    api: HttpTool,
    service: Service,
    sqlite_journal: Journal,
    status: int,
    retry_after: str | None,
) -> None:
    before = state(service)
    run_id, new_id = create_one(api, service, sqlite_journal)
    extra = {"retry_after": retry_after} if retry_after else {}
    fail_next(service, "DELETE", f"/items/{new_id}", status, 2, **extra)

    report = goex.rollback(run_id, journal=sqlite_journal, retry=FAST)

    assert report.complete
    assert state(service)["items"] == before["items"]
    step = sqlite_journal.steps(run_id)[0]
    notes = transient_notes(sqlite_journal, step.id)
    assert len(notes) == 2 and all(f"answered {status}" in n for n in notes)
    assert service.state.requests.count(f"DELETE /items/{new_id}") == 3


def test_an_undo_that_keeps_failing_is_reported_then_resumed(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    run_id, new_id = create_one(api, service, sqlite_journal)
    fail_next(service, "DELETE", f"/items/{new_id}", 503, 100)
    with pytest.raises(goex.RollbackFailed) as failure:
        goex.rollback(run_id, journal=sqlite_journal, retry=FAST)
    outcome = failure.value.report.outcomes[0]
    assert outcome.outcome == "failed"
    assert outcome.detail.startswith("still failing after 3 attempts: ")
    assert "answered 503" in outcome.detail
    step = sqlite_journal.steps(run_id)[0]
    assert step.status is StepStatus.COMPENSATION_FAILED and step.error == outcome.detail
    assert [i["id"] for i in state(service)["items"]] == [new_id]  # nothing silently dropped

    service.state.faults.clear()  # the service recovers
    goex.rollback(run_id, journal=sqlite_journal, retry=FAST)
    assert state(service)["items"] == []
    assert sqlite_journal.steps(run_id)[0].status is StepStatus.COMPENSATED


def test_a_permanent_failure_is_not_retried(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    run_id, new_id = create_one(api, service, sqlite_journal)
    fail_next(service, "DELETE", f"/items/{new_id}", 403, 1)
    with pytest.raises(goex.RollbackFailed) as failure:
        goex.rollback(run_id, journal=sqlite_journal, retry=FAST)
    assert "answered 403" in failure.value.report.outcomes[0].detail
    step = sqlite_journal.steps(run_id)[0]
    assert transient_notes(sqlite_journal, step.id) == []
    assert service.state.requests.count(f"DELETE /items/{new_id}") == 1


def test_an_unreachable_service_is_retried_reported_and_resumed(
    secret_env: None, sqlite_journal: Journal
) -> None:
    """The service goes down after the call; the undo fails, and succeeds once it is back."""
    first = Service(token=TOKEN).start()
    api = HttpTool(registered_rules(first.url))
    run_id, _ = create_one(api, first, sqlite_journal)
    kept = first.state
    first.stop()
    with pytest.raises(goex.RollbackFailed) as failure:
        goex.rollback(run_id, journal=sqlite_journal, retry=FAST)
    detail = failure.value.report.outcomes[0].detail
    assert detail.startswith("still failing after 3 attempts: GET ") and "ConnectError" in detail
    assert sqlite_journal.steps(run_id)[0].status is StepStatus.COMPENSATION_FAILED

    again = Service(token=TOKEN, port=first.port, state=kept).start()
    try:
        goex.rollback(run_id, journal=sqlite_journal, retry=FAST)
        assert state(again)["items"] == []
    finally:
        again.stop()
