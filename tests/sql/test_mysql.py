"""MySQL/MariaDB: statements run in one transaction and are journaled; reads need no undo;
data changes are declared irreversible (no row capture on this dialect yet), so policy can
refuse them, and a confirm callback can still roll them back before COMMIT, except where
ROLLBACK would not take them back (implicit commits, tables without transactions)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.domains.sql import InvalidSql, propose, run_sql
from goex_tools.errors import GoexError
from tests.sql.conftest import dump_all, execute_script


def test_reads_run_and_need_no_undo(mysql_url: str, journal: Journal) -> None:
    with goex.run("read", journal=journal) as run:
        result = run_sql("SELECT name FROM customers WHERE name LIKE 'a%' ORDER BY id", mysql_url)
        shown = run_sql("SHOW TABLES; DESCRIBE customers", mysql_url)
    assert result.results[0].rows == [["ada"]]
    assert shown.results[0].rows == [["customers"]] and shown.results[1].rows
    steps = journal.steps(run.id)
    assert [s.reversibility for s in steps] == [Reversibility.NO_EFFECT] * 2
    assert [s.status for s in steps] == [StepStatus.APPLIED] * 2


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


def test_ddl_must_run_alone_because_it_commits_implicitly(mysql_url: str, journal: Journal) -> None:
    before = dump_all(mysql_url)
    batch = "INSERT INTO customers (name) VALUES ('cy'); CREATE TABLE notes (id int)"
    with pytest.raises(InvalidSql, match="commits implicitly"):
        propose(batch, mysql_url)
    with goex.run("mixed", journal=journal) as run, pytest.raises(InvalidSql, match="own"):
        run_sql(batch, mysql_url)
    with pytest.raises(InvalidSql, match="confirm callback could not roll it back"):
        run_sql("CREATE TABLE notes (id int)", mysql_url, confirm=lambda s: False)
    assert dump_all(mysql_url) == before and journal.steps(run.id) == []

    with goex.run("alone", journal=journal) as run:
        assert run_sql("CREATE TABLE notes (id int)", mysql_url).committed
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE and "commit DDL at once" in step.notes[0]
    assert set(dump_all(mysql_url)) == {*before, "notes"}


def test_a_table_without_transactions_gets_no_confirm_and_a_warning(
    mysql_url: str, journal: Journal
) -> None:
    execute_script(mysql_url, "CREATE TABLE hits (n int PRIMARY KEY) ENGINE=MyISAM;")
    before = dump_all(mysql_url)
    with goex.run("myisam", journal=journal) as run, pytest.raises(GoexError, match="MyISAM"):
        run_sql("INSERT INTO hits VALUES (1)", mysql_url, confirm=lambda s: False)
    [refused] = journal.steps(run.id)
    assert refused.status is StepStatus.FAILED and "nothing was run" in (refused.error or "")
    assert dump_all(mysql_url) == before

    with goex.run("half", journal=journal) as run, pytest.raises(sa.exc.IntegrityError):
        run_sql("INSERT INTO hits VALUES (1); INSERT INTO hits VALUES (1)", mysql_url)
    [failed] = journal.steps(run.id)
    assert failed.status is StepStatus.FAILED
    assert any("rows written so far stay" in note for note in failed.notes)
    assert dump_all(mysql_url)["hits"] == [(1,)]  # the journal's note says so; MyISAM kept it


def test_a_failed_innodb_batch_changes_nothing(mysql_url: str, journal: Journal) -> None:
    before = dump_all(mysql_url)
    batch = "DELETE FROM customers WHERE id = 2; INSERT INTO customers (id, name) VALUES (1, 'x')"
    with goex.run("half", journal=journal) as run, pytest.raises(sa.exc.IntegrityError):
        run_sql(batch, mysql_url)
    assert dump_all(mysql_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.notes[1:]
