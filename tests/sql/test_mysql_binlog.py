"""MySQL/MariaDB with a row-based binary log: every row a batch changed is read back before
COMMIT and undone exactly, triggers not re-fired; compared as full dumps of every table."""

from __future__ import annotations

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.domains.sql import propose, run_sql
from tests.sql.conftest import dump_all


def test_mysql_update_with_a_trigger_is_undone_exactly(binlog_url: str, journal: Journal) -> None:
    before = dump_all(binlog_url)
    proposal = propose("UPDATE orders SET status = 'shipped' WHERE id <= 2", binlog_url)
    assert proposal.reversibility is Reversibility.REVERSIBLE, proposal.notes
    with goex.run("agent", journal=journal) as run:
        result = run_sql("UPDATE orders SET status = 'shipped' WHERE id <= 2", binlog_url)
    assert result.committed and result.changes is not None
    assert result.changes.tables["orders"].updated == 2
    assert result.changes.tables["audit"].inserted == 2
    after = dump_all(binlog_url)
    assert after != before and len(after["audit"]) == 2
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.APPLIED
    goex.rollback(run.id, journal=journal)
    assert dump_all(binlog_url) == before
