"""An SQL undo killed between its COMMIT and the journal's `compensated` mark (issue 20
item 5): `goex recover` releases the step, and rolling back again is a no-op that reports
complete, instead of applying the inverse a second time and stopping on a "conflict" with
goex's own changes. The kill is real (SIGKILL of the rolling-back process, at the journal
write that would mark the step compensated)."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all, execute_script, run_killed

ROLLBACK = """
import os, signal, sys
import goex_tools as goex
from goex_tools.journal import Journal
from goex_tools.model import StepStatus

transitions = Journal.transitions

def die_before_compensated(self, moves):
    if any(move.to is StepStatus.COMPENSATED for move in moves):
        os.kill(os.getpid(), signal.SIGKILL)
    return transitions(self, moves)

Journal.transitions = die_before_compensated
goex.rollback(sys.argv[1], journal=sys.argv[2])
"""


@pytest.mark.parametrize(
    "batch",
    [
        "DELETE FROM customers WHERE id = 1; UPDATE tags SET weight = 9",
        "INSERT INTO tags VALUES ('x', 1), ('y', 2); DELETE FROM tags WHERE label = 'y'",
        "UPDATE orders SET status = 'held' WHERE id = 2",
    ],
    ids=["keys-and-keyless", "keyless-duplicates", "trigger-writes"],
)
def test_sql_undo_killed_after_its_commit_runs_again_as_a_no_op(
    db_url: str, journal: Journal, batch: str
) -> None:
    before = dump_all(db_url)
    with goex.run("undone twice", journal=journal) as run:
        run_sql(batch, db_url)
    assert dump_all(db_url) != before
    run_killed(ROLLBACK, run.id, journal.url)
    assert dump_all(db_url) == before  # the undo committed
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.COMPENSATING  # the journal does not know it yet

    [outcome] = goex.recover(journal)
    assert outcome.resolution == "released"
    report = goex.rollback(run.id, journal=journal)
    assert report.complete, report
    assert dump_all(db_url) == before  # not undone a second time
    assert journal.get_step(step.id).status is StepStatus.COMPENSATED


def test_sql_undo_of_a_step_someone_restored_by_hand_is_not_a_no_op(
    sqlite_url: str, journal: Journal
) -> None:
    """Only goex's own earlier undo makes a re-run a no-op: rows someone else changed are a
    conflict as before."""
    with goex.run("changed", journal=journal) as run:
        run_sql("UPDATE customers SET tier = 'x' WHERE id = 1", sqlite_url)
    execute_script(sqlite_url, "UPDATE customers SET tier = 'y' WHERE id = 1")
    with pytest.raises(goex.RollbackFailed, match="changed since"):
        goex.rollback(run.id, journal=journal)
