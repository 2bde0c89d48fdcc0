"""Compensating calls are retried on timeouts, 5xx and 429 (honouring Retry-After, within a
bound); one that keeps failing is reported, not dropped."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.domains.http import HttpTool
from goex_tools.domains.http.send import MAX_RETRY_AFTER
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


def gaps(service: Service, request: str) -> list[float]:
    """Seconds between successive arrivals of `request` at the service."""
    times = [t for t, seen in service.state.arrivals if seen == request]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def in_seconds(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "least", "most"),
    [
        ("1", 1.0, 30.0),  # seconds, as asked
        (None, 1.5, 30.0),  # an HTTP date 3 s ahead, to the second: some 2-3 s
        ("86400", MAX_RETRY_AFTER, 30.0),  # a day: bounded
    ],
)
def test_an_undo_waits_as_retry_after_asks_within_a_bound(
    api: HttpTool,
    service: Service,
    sqlite_journal: Journal,
    retry_after: str | None,
    least: float,
    most: float,
) -> None:
    run_id, new_id = create_one(api, service, sqlite_journal)
    fail_next(
        service, "DELETE", f"/items/{new_id}", 429, 1, retry_after=retry_after or in_seconds(3)
    )
    goex.rollback(run_id, journal=sqlite_journal, retry=FAST)  # FAST waits ~0.01 s by itself
    assert state(service)["items"] == []
    (waited,) = gaps(service, f"DELETE /items/{new_id}")
    assert least <= waited < most


def test_an_undo_that_times_out_is_retried_with_the_tools_timeout(
    service: Service, sqlite_journal: Journal
) -> None:
    api = HttpTool(registered_rules(service.url), timeout=0.5)
    run_id, new_id = create_one(api, service, sqlite_journal)
    step = sqlite_journal.steps(run_id)[0]
    assert step.compensation is not None and step.compensation.args["timeout"] == 0.5
    # the undo's state read hangs twice for longer than the timeout, then answers
    fault = {"method": "GET", "path": f"/items/{new_id}", "status": 0, "delay": 2.0, "times": 2}
    httpx.post(f"{service.url}/_faults", json=fault).raise_for_status()

    goex.rollback(run_id, journal=sqlite_journal, retry=FAST)

    assert state(service)["items"] == []
    notes = transient_notes(sqlite_journal, step.id)
    assert len(notes) == 2 and all("ReadTimeout" in n for n in notes)
