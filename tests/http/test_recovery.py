"""A crash between journaling and finishing a call: recovery probes the service's state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from tests.http.conftest import seed, state
from tests.http.service import Service

ROOT = Path(__file__).resolve().parents[2]


def crash(
    journal: Journal, service: Service, method: str, path: str, body: Any, moment: str
) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.http.crash",
            journal.url,
            service.url,
            method,
            path,
            json.dumps(body),
            moment,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 17, done.stderr
    (run,) = journal.list_runs()
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.PENDING
    return run.id


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/items/1", None),
        ("PUT", "/items/1", {"name": "x"}),
        ("POST", "/items", {"name": "n"}),
    ],
)
def test_a_call_that_happened_before_the_crash_is_recovered_and_undone(
    service: Service, sqlite_journal: Journal, method: str, path: str, body: Any
) -> None:
    seed(service, {"name": "one"})
    before = state(service)
    run_id = crash(sqlite_journal, service, method, path, body, "after_send")
    assert state(service) != before

    (outcome,) = goex.recover(sqlite_journal)
    assert outcome.resolution == "applied", outcome.detail
    assert sqlite_journal.steps(run_id)[0].status is StepStatus.APPLIED
    goex.rollback(run_id, journal=sqlite_journal)
    assert state(service)["items"] == before["items"]


def test_a_call_never_sent_is_recovered_as_failed(
    service: Service, sqlite_journal: Journal
) -> None:
    seed(service, {"name": "one"})
    before = state(service)
    run_id = crash(sqlite_journal, service, "DELETE", "/items/1", None, "before_send")
    (outcome,) = goex.recover(sqlite_journal)
    assert outcome.resolution == "failed", outcome.detail
    assert sqlite_journal.steps(run_id)[0].status is StepStatus.FAILED
    assert state(service) == before
