"""MySQL/MariaDB: statements run in one transaction and are journaled; reads need no undo;
data changes are declared irreversible (no row capture on this dialect yet), so policy can
refuse them, and a confirm callback can still roll them back before COMMIT."""

from __future__ import annotations

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.domains.sql import propose, run_sql
from tests.sql.conftest import dump_all


def test_reads_run_and_need_no_undo(mysql_url: str, journal: Journal) -> None:
    with goex.run("read", journal=journal) as run:
        result = run_sql("SELECT name FROM customers WHERE name LIKE 'a%' ORDER BY id", mysql_url)
    assert result.results[0].rows == [["ada"]]
    [step] = journal.steps(run.id)
    assert step.reversibility is Reversibility.NO_EFFECT and step.status is StepStatus.APPLIED


def test_writes_are_irreversible_but_confirmable(mysql_url: str, journal: Journal) -> None:
    proposal = propose("UPDATE customers SET tier = 'gold'", mysql_url)
    assert proposal.reversibility is Reversibility.IRREVERSIBLE
    assert proposal.predicted["dialect"] == "mysql"
    assert proposal.predicted["reversible_by"] is None
    assert "not supported on mysql" in proposal.notes[0]

    before = dump_all(mysql_url)
    with goex.run("declined", journal=journal):
        declined = run_sql("UPDATE customers SET tier = 'gold'", mysql_url, confirm=lambda s: False)
    assert not declined.committed and dump_all(mysql_url) == before

    with goex.run("applied", journal=journal) as run:
        assert run_sql("DELETE FROM customers WHERE id = 2", mysql_url).committed
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE and step.compensation is None
    assert dump_all(mysql_url)["customers"] == before["customers"][:1]
