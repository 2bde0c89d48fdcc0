"""A process killed in the middle of run_sql: `goex recover` asks the database what happened.

The kill is real (SIGKILL of an agent process). To stop it at an exact point, the agent
process kills itself from the confirm callback (before COMMIT) or from the journal's
`applied` mark (after COMMIT)."""

from __future__ import annotations

import goex_tools as goex
from goex_tools import Journal, StepStatus
from tests.sql.conftest import dump_all, run_killed

AGENT = """
import os, signal, sys
import goex_tools as goex
from goex_tools.domains.sql import run_sql
from goex_tools.runtime import StepHandle

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

journal_url, db_url, where = sys.argv[1:4]
if where == "after_commit":
    StepHandle.finish = die
with goex.run("doomed", journal=goex.Journal(journal_url)):
    run_sql("DELETE FROM customers WHERE id = 1; UPDATE tags SET weight = 9", db_url,
            confirm=die if where == "before_commit" else None)
"""


def crash(journal: Journal, db_url: str, where: str) -> str:
    run_killed(AGENT, journal.url, db_url, where)
    [run] = journal.list_runs()
    return run.id


def test_killed_before_commit_recovers_as_failed(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    run_id = crash(journal, db_url, "before_commit")
    [step] = journal.steps(run_id)
    assert step.status is StepStatus.PENDING
    [outcome] = goex.recover(journal)
    assert outcome.resolution == "failed"
    assert journal.get_step(step.id).status is StepStatus.FAILED
    assert dump_all(db_url) == before


def test_killed_after_commit_recovers_as_applied_and_rolls_back(
    db_url: str, journal: Journal
) -> None:
    before = dump_all(db_url)
    run_id = crash(journal, db_url, "after_commit")
    changed = dump_all(db_url)
    assert changed != before
    [outcome] = goex.recover(journal)
    assert outcome.resolution == "applied", outcome.detail
    assert goex.rollback(run_id, journal=journal).complete
    assert dump_all(db_url) == before
