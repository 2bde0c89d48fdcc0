"""MySQL/MariaDB without a row-based binary log (the server at 127.0.0.1:3306): statements run
in one transaction and are journaled; reads need no undo; data changes are declared
irreversible (their rows cannot be read back: test_mysql_binlog has a server that can), so
policy can refuse them, and a confirm callback can still roll them back before COMMIT, except where
ROLLBACK would not take them back (implicit commits, tables without transactions)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.domains.sql import ChangeSummary, InvalidSql, propose, run_sql
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
    assert "cannot be read back from the binary log" in proposal.notes[0]
    assert "no binary log" in proposal.notes[0]  # says which setting is missing

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


def test_confirm_sees_the_affected_row_counts_of_each_table(
    mysql_url: str, journal: Journal
) -> None:
    """No row capture here, but the server's affected-row counts: a guard on the number of
    rows changed sees the real number (it saw 0 and approved anything)."""
    execute_script(mysql_url, "CREATE TABLE notes (id int PRIMARY KEY, body text) ENGINE=InnoDB;")
    before = dump_all(mysql_url)
    batch = (
        "DELETE FROM customers WHERE id = 2; UPDATE customers SET tier = 'x'; "
        "INSERT INTO notes VALUES (1, 'a'), (2, 'b')"
    )
    seen: list[ChangeSummary] = []

    def guard(summary: ChangeSummary) -> bool:
        seen.append(summary)
        return summary.rows_changed < 4

    with goex.run("guarded", journal=journal) as run:
        result = run_sql(batch, mysql_url, confirm=guard)
    assert not result.committed and dump_all(mysql_url) == before
    [summary] = seen
    assert summary.rows_changed == 4
    assert {n: (t.inserted, t.updated, t.deleted) for n, t in summary.tables.items()} == {
        "customers": (0, 1, 1),
        "notes": (2, 0, 0),
    }

    with goex.run("applied", journal=journal) as run:
        assert run_sql(batch, mysql_url).committed
    [step] = journal.steps(run.id)
    assert step.effect["rows_changed"] == 4
    assert step.effect["tables"]["notes"] == {"inserted": 2, "updated": 0, "deleted": 0}


@pytest.mark.parametrize(
    ("schema", "batch", "named"),
    [
        (
            "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, FOREIGN KEY "
            "(customer_id) REFERENCES customers(id) ON DELETE CASCADE) ENGINE=InnoDB;"
            "INSERT INTO orders VALUES (1, 2), (2, 2);",
            "DELETE FROM customers WHERE id = 2",
            "orders",
        ),
        (
            "CREATE TABLE log (n int) ENGINE=InnoDB;"
            "CREATE TRIGGER logged AFTER UPDATE ON customers FOR EACH ROW "
            "INSERT INTO log VALUES (NEW.id);",
            "UPDATE customers SET tier = 'y'",
            "trigger",
        ),
        (
            "CREATE TABLE log (n int) ENGINE=InnoDB;"
            "CREATE FUNCTION bump() RETURNS int MODIFIES SQL DATA "
            "BEGIN INSERT INTO log VALUES (1); RETURN 1; END;",
            "UPDATE customers SET tier = 'z' WHERE id = bump()",
            "bump",
        ),
        ("", "UPDATE customers a JOIN customers b ON a.id = b.id SET a.tier = 'w'", "tables"),
    ],
    ids=["cascade", "trigger", "stored-function", "multi-table"],
)
def test_confirm_is_refused_where_affected_rows_miss_some(
    mysql_url: str, journal: Journal, schema: str, batch: str, named: str
) -> None:
    """Cascades, trigger writes and stored functions' writes are not in the affected-row
    counts: a confirm callback would see too few rows, so it is refused and nothing runs."""
    if schema:
        execute_script(mysql_url, schema)
    before = dump_all(mysql_url)
    with goex.run("refused", journal=journal), pytest.raises(GoexError) as refused:
        run_sql(batch, mysql_url, confirm=lambda s: True)
    assert named in str(refused.value) and "nothing was run" in str(refused.value)
    assert dump_all(mysql_url) == before
