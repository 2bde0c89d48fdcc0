"""MySQL/MariaDB with a row-based binary log: every row a batch changed is read back before
COMMIT and undone exactly, with no trigger re-fired; compared as full dumps of every table.

The server is the throw-away MariaDB scripts/test.sh starts with log_bin, binlog_format=ROW,
binlog_row_image=FULL and binlog_row_metadata=FULL (GOEX_TEST_MYSQL_BINLOG_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.domains.sql import ChangeSummary, propose, run_sql
from goex_tools.errors import GoexError, RollbackFailed
from goex_tools.redaction import UNDO_HELD_A_SECRET, redactor
from tests.sql.conftest import ROOT, dump_all, execute_script, run_killed
from tests.sql.test_undo_crash import ROLLBACK


def undone(url: str, journal: Journal, batch: str, **kwargs: Any) -> goex.Step:
    """Run `batch` as a step, check it changed something, roll it back, check the dump."""
    before = dump_all(url)
    assert propose(batch, url).reversibility is Reversibility.REVERSIBLE, propose(batch, url).notes
    with goex.run("agent", journal=journal) as run:
        assert run_sql(batch, url, **kwargs).committed
    assert dump_all(url) != before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.APPLIED
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(url) == before
    return step


def purge_logs(url: str) -> None:
    """Rotate the binary log and purge every file but the new one (the server keeps a file
    until its transactions are checkpointed: try again until it is gone)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        for _ in range(100):
            conn.exec_driver_sql("FLUSH BINARY LOGS")
            current = conn.exec_driver_sql("SHOW MASTER STATUS").one()[0]
            conn.exec_driver_sql(f"PURGE BINARY LOGS TO '{current}'")
            if [r[0] for r in conn.exec_driver_sql("SHOW BINARY LOGS")] == [current]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the server kept its old binary logs")
    engine.dispose()


def prepared(url: str) -> list[str]:
    """The XA transactions prepared on the server (none may be left behind)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        found = [str(r[0]) for r in conn.exec_driver_sql("XA RECOVER")]
    engine.dispose()
    return found


def test_mysql_update_with_a_trigger_is_undone_without_refiring_it(
    binlog_url: str, journal: Journal
) -> None:
    """The audit trigger's rows are undone with the update, and the undo's own update of
    orders writes no audit row (a replayed row fires no trigger)."""
    step = undone(binlog_url, journal, "UPDATE orders SET status = 'shipped' WHERE id <= 2")
    assert step.effect["tables"]["audit"]["inserted"] == 2
    assert step.effect["tables"]["orders"]["updated"] == 2


def test_mysql_before_trigger_changing_the_row_is_not_refired(
    binlog_url: str, journal: Journal
) -> None:
    execute_script(
        binlog_url,
        "ALTER TABLE tags ADD COLUMN touched int NOT NULL DEFAULT 0;"
        "CREATE TRIGGER tags_touch BEFORE UPDATE ON tags FOR EACH ROW "
        "SET NEW.touched = OLD.touched + 1;",
    )
    undone(binlog_url, journal, "UPDATE tags SET weight = weight + 1 WHERE label = 'x'")


def test_mysql_multi_statement_batch_over_many_tables(binlog_url: str, journal: Journal) -> None:
    batch = (
        "INSERT INTO customers (name, photo) VALUES ('dee', x'00ff00'), ('eve', NULL);"
        "UPDATE orders SET amount = amount * 3, status = 'paid' WHERE customer_id = 1;"
        "DELETE FROM order_lines WHERE sku = 'pen';"
        "INSERT INTO order_lines VALUES (2, 7, 'cap');"
        "UPDATE order_lines SET line = line + 10 WHERE order_id = 1;"  # keys move
        "UPDATE customers SET name = 'ADA' WHERE id = 1"
    )
    step = undone(binlog_url, journal, batch)
    assert step.effect["rows_changed"] >= 9


def test_mysql_keyless_table_with_identical_rows(binlog_url: str, journal: Journal) -> None:
    undone(
        binlog_url,
        journal,
        "UPDATE tags SET weight = 5 WHERE label = 'x' LIMIT 1; DELETE FROM tags WHERE "
        "label = 'y'; INSERT INTO tags VALUES ('x', 1), ('z', NULL)",
    )


KINDS = """
CREATE TABLE kinds (id int PRIMARY KEY, d decimal(30,10), dt datetime(6), ts timestamp(6) NULL,
    t time(6), y year, j json, b blob, bn binary(4), vb varbinary(10), bt bit(13),
    e enum('x','y','z'), st set('p','q','r'), f float, f2 double, u bigint unsigned,
    ti tinyint, c char(5), l1 varchar(20) CHARACTER SET latin1,
    u8 varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci,
    gv int AS (id * 2) VIRTUAL, gs int AS (ti + 1) STORED) ENGINE=InnoDB;
INSERT INTO kinds (id, d, dt, ts, t, y, j, b, bn, vb, bt, e, st, f, f2, u, ti, c, l1, u8) VALUES
    (1, 12345678901234567890.0123456789, '9999-12-31 23:59:59.999999',
     '2038-01-19 03:14:07.499999', '-838:59:59.000000', 2155,
     '{"b": 1,  "a": [1, 2.50], "b": 2}', x'00ff0010', x'01020000', x'0000', b'1010101010101',
     'z', '', 0.123456789, -0.0, 18446744073709551615, -128, 'ab', 'caf\xe9', 'Ab 🍰 ',
     );
INSERT INTO kinds (id) VALUES (2);
"""
EXACT = """SELECT id, HEX(d), HEX(dt), HEX(ts), HEX(t), y, HEX(j), HEX(b), HEX(bn), HEX(vb),
    bt + 0, HEX(e), HEX(st), f + 0e0, CONCAT(f2), 1 / f2 < 0, u, ti, HEX(c), HEX(l1), HEX(u8),
    gv, HEX(gs) FROM kinds ORDER BY id"""


def exact(url: str) -> list[tuple[Any, ...]]:
    """The kinds table byte for byte (floats by every digit, -0 by its sign)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET time_zone = '+00:00'")
        found = [tuple(r) for r in conn.exec_driver_sql(EXACT)]
    engine.dispose()
    return found


@pytest.mark.parametrize(
    "batch",
    [
        "UPDATE kinds SET d = -d, dt = '2000-01-01', ts = NULL, t = '00:00:00.000001', y = 1901, "
        "j = '[]', b = x'ff', bn = x'ff', vb = NULL, bt = b'1', e = 'x', st = 'p,q,r', f = 1e-30, "
        "f2 = 0.1, u = 0, ti = 127, c = 'z', l1 = 'x', u8 = 'AB 🍰' WHERE id = 1",
        "UPDATE kinds SET d = 1, dt = NOW(6), ts = '1970-01-01 00:00:01', j = '{}', b = '', "
        "bt = 0, e = 'y', st = 'q', f = -0.0, f2 = 1e308, c = '', l1 = '', u8 = '' WHERE id = 2",
        "DELETE FROM kinds",
        "INSERT INTO kinds (id, d, f, f2, j) SELECT id + 10, d, f, f2, j FROM kinds",
    ],
    ids=["update-every-value", "update-nulls", "delete", "insert"],
)
def test_mysql_every_column_type_comes_back_exactly(
    binlog_url: str, journal: Journal, batch: str
) -> None:
    execute_script(binlog_url, KINDS.replace("'Ab 🍰 ',\n     );", "'Ab 🍰 ');"))
    before = exact(binlog_url)
    undone(binlog_url, journal, batch)
    assert exact(binlog_url) == before


def test_mysql_confirm_sees_the_rows_before_commit(binlog_url: str, journal: Journal) -> None:
    before = dump_all(binlog_url)
    seen: list[ChangeSummary] = []

    def guard(summary: ChangeSummary) -> bool:
        seen.append(summary)
        return summary.rows_changed < 3

    batch = "UPDATE orders SET status = 'void' WHERE id = 3; DELETE FROM order_lines"
    with goex.run("guarded", journal=journal) as run:
        declined = run_sql(batch, binlog_url, confirm=guard)
    assert not declined.committed and dump_all(binlog_url) == before
    [summary] = seen
    assert summary.reversible_by == "mysql-binlog-rows"
    assert {n: (t.inserted, t.updated, t.deleted) for n, t in summary.tables.items()} == {
        "orders": (0, 1, 0),
        "audit": (1, 0, 0),
        "order_lines": (0, 0, 5),
    }
    [order] = summary.tables["orders"].rows
    assert order.before is not None and order.after is not None
    assert (order.before["status"], order.after["status"]) == ("new", "void")
    assert str(order.before["amount"]) == "7.2500"
    assert summary.tables["audit"].rows[0].after["what"] == "order 3: new -> void"  # type: ignore[index]
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED
    assert prepared(binlog_url) == []  # the declined XA transaction was rolled back


def test_mysql_conflicts_stop_the_undo_and_force_writes_before_images(
    binlog_url: str, journal: Journal
) -> None:
    before = dump_all(binlog_url)
    batch = (
        "UPDATE orders SET status = 'paid' WHERE id = 1; UPDATE orders SET amount = 1 "
        "WHERE id = 2; INSERT INTO order_lines VALUES (4, 2, 'new'); DELETE FROM "
        "order_lines WHERE order_id = 3"
    )
    with goex.run("agent", journal=journal) as run:
        run_sql(batch, binlog_url)
    # someone else: changes a row the step updated, deletes one it updated, deletes the
    # row it inserted, and puts a row back at the key it deleted
    execute_script(
        binlog_url,
        "UPDATE orders SET amount = 55 WHERE id = 1; DELETE FROM order_lines WHERE "
        "order_id = 2; DELETE FROM order_lines WHERE order_id = 4 AND line = 2;"
        "INSERT INTO order_lines VALUES (3, 1, 'other');",
    )
    theirs = dump_all(binlog_url)
    with pytest.raises(RollbackFailed) as stopped:
        goex.rollback(run.id, journal=journal)
    message = str(stopped.value)
    assert "was changed since the step" in message and "exists again" in message
    assert dump_all(binlog_url) == theirs  # nothing was undone
    assert goex.rollback(run.id, journal=journal, force=True).complete
    restored = dump_all(binlog_url)
    assert restored["orders"] == before["orders"]
    assert restored["order_lines"] == sorted(
        [r for r in before["order_lines"] if r[0] != 2], key=repr
    )  # their delete of (2, 1) stays: the step never touched it
    audit = [r[1] for r in restored["audit"]]
    assert audit == ["order 1: new -> paid"] or audit == []  # the trigger's row went with it
    assert restored["audit"] == before["audit"]


def test_mysql_keyless_conflict_cannot_be_forced(binlog_url: str, journal: Journal) -> None:
    with goex.run("agent", journal=journal) as run:
        run_sql("INSERT INTO tags VALUES ('n', 1)", binlog_url)
    execute_script(binlog_url, "UPDATE tags SET weight = 2 WHERE label = 'n';")
    theirs = dump_all(binlog_url)
    with pytest.raises(RollbackFailed, match="changed or deleted since"):
        goex.rollback(run.id, journal=journal)
    with pytest.raises(RollbackFailed, match="no primary key"):
        goex.rollback(run.id, journal=journal, force=True)
    assert dump_all(binlog_url) == theirs


def test_mysql_undo_refuses_to_break_a_foreign_key(binlog_url: str, journal: Journal) -> None:
    with goex.run("agent", journal=journal) as run:
        run_sql("INSERT INTO orders (id, customer_id, amount) VALUES (9, 3, 1)", binlog_url)
    execute_script(binlog_url, "INSERT INTO order_lines VALUES (9, 1, 'theirs');")
    theirs = dump_all(binlog_url)
    for force in (False, True):
        with pytest.raises(RollbackFailed, match="would break a foreign key"):
            goex.rollback(run.id, journal=journal, force=force)
        assert dump_all(binlog_url) == theirs


def test_mysql_cascading_delete_is_irreversible_up_front(binlog_url: str) -> None:
    """InnoDB runs ON DELETE CASCADE below the binary log: those rows could never come back."""
    proposal = propose("DELETE FROM customers WHERE id = 3", binlog_url)
    assert proposal.reversibility is Reversibility.IRREVERSIBLE
    assert "ON DELETE CASCADE" in proposal.notes[0]
    assert "orders" in proposal.notes[0]


def test_mysql_cascade_set_off_by_a_trigger_rolls_the_batch_back(
    binlog_url: str, journal: Journal
) -> None:
    execute_script(
        binlog_url,
        "CREATE TRIGGER tags_purge AFTER INSERT ON tags FOR EACH ROW "
        "DELETE FROM orders WHERE id = NEW.weight;",
    )
    before = dump_all(binlog_url)
    assert propose("INSERT INTO tags VALUES ('purge', 1)", binlog_url).reversibility is (
        Reversibility.REVERSIBLE
    )
    with goex.run("agent", journal=journal) as run, pytest.raises(GoexError, match="CASCADE"):
        run_sql("INSERT INTO tags VALUES ('purge', 1)", binlog_url)
    assert dump_all(binlog_url) == before  # order 1 and its lines are all there
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and "nothing changed" in (step.error or "")
    assert prepared(binlog_url) == []


def test_mysql_a_function_switching_off_the_binary_log_fails_the_batch(
    binlog_url: str, journal: Journal
) -> None:
    """The server refuses sql_log_bin (and binlog_format) changes inside a stored function
    or a transaction, so a batch cannot write rows the binary log misses."""
    execute_script(
        binlog_url,
        "CREATE FUNCTION quiet() RETURNS int DETERMINISTIC "
        "BEGIN SET sql_log_bin = 0; INSERT INTO tags VALUES ('quiet', 0); RETURN 1; END;",
    )
    before = dump_all(binlog_url)
    with goex.run("agent", journal=journal), pytest.raises(sa.exc.OperationalError):
        run_sql("UPDATE orders SET amount = quiet() WHERE id = 1", binlog_url)
    assert dump_all(binlog_url) == before
    assert prepared(binlog_url) == []


def test_mysql_a_function_setting_minimal_images_is_refused(
    binlog_url: str, journal: Journal
) -> None:
    """A stored function switching its session to partial row images mid-batch: the images
    read back are not whole, so the batch is rolled back rather than half undoable."""
    execute_script(
        binlog_url,
        "CREATE FUNCTION sly() RETURNS int DETERMINISTIC "
        "BEGIN SET SESSION binlog_row_image = 'MINIMAL'; RETURN 1; END;",
    )
    before = dump_all(binlog_url)
    batch = "UPDATE tags SET weight = sly() WHERE label = 'y'; UPDATE orders SET amount = 0"
    with goex.run("agent", journal=journal), pytest.raises(GoexError):
        run_sql(batch, binlog_url)
    assert dump_all(binlog_url) == before
    assert prepared(binlog_url) == []


def test_mysql_without_a_privilege_propose_says_which(binlog_url: str) -> None:
    name = sa.engine.make_url(binlog_url).database
    execute_script(
        binlog_url,
        "CREATE USER IF NOT EXISTS 'goex_agent'@'%' IDENTIFIED BY 'pw';"
        f"GRANT ALL ON `{name}`.* TO 'goex_agent'@'%';",
    )
    agent = sa.engine.make_url(binlog_url).set(username="goex_agent", password="pw")
    url = agent.render_as_string(hide_password=False)
    try:
        proposal = propose("UPDATE tags SET weight = 3", url)
        assert proposal.reversibility is Reversibility.IRREVERSIBLE
        assert "REPLICATION SLAVE" in proposal.notes[0]
    finally:
        execute_script(binlog_url, "DROP USER 'goex_agent'@'%';")


def test_mysql_rows_holding_a_secret_are_not_journaled(binlog_url: str, journal: Journal) -> None:
    secret = "sk-live-4f9c2a7e1b"
    execute_script(binlog_url, f"INSERT INTO tags VALUES ('{secret}', 9);")
    redactor.add_secret(secret)
    with goex.run("clear", journal=journal) as run:
        run_sql("DELETE FROM tags WHERE weight = 9", binlog_url)
    [step] = journal.steps(run.id)
    assert secret not in step.model_dump_json()
    assert step.compensation is not None
    assert step.compensation.unavailable == UNDO_HELD_A_SECRET


def test_mysql_undo_from_another_process_after_the_log_is_purged(
    binlog_url: str, journal: Journal
) -> None:
    """The journal holds the rows themselves: a `goex rollback` in another process undoes the
    step after the binary log it was read from is gone."""
    before = dump_all(binlog_url)
    with goex.run("agent", journal=journal) as run:
        run_sql("UPDATE customers SET tier = 'vip', photo = x'0102'", binlog_url)
    purge_logs(binlog_url)
    done = subprocess.run(
        [sys.executable, "-m", "goex_tools.cli", "--journal", journal.url, "rollback", run.id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert dump_all(binlog_url) == before


AGENT = """
import os, signal, sys
import goex_tools as goex
from goex_tools.domains.sql import mysql_capture, run_sql

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

journal_url, db_url, where = sys.argv[1:4]
if where == "after_prepare":  # XA PREPARE done, rows not read back yet
    mysql_capture.mysql_binlog.read_transaction = die
else:  # XA COMMIT done, the journal not told
    commit = mysql_capture.MysqlTransaction.commit
    def commit_then_die(self):
        commit(self)
        die()
    mysql_capture.MysqlTransaction.commit = commit_then_die
with goex.run("doomed", journal=goex.Journal(journal_url)):
    run_sql("DELETE FROM order_lines WHERE order_id = 1; UPDATE tags SET weight = 9",
            db_url)
"""


def test_mysql_killed_after_prepare_is_rolled_back_by_recover(
    binlog_url: str, journal: Journal
) -> None:
    """A prepared XA transaction outlives its process: `goex recover` finds it by the XA id
    journaled before XA PREPARE and rolls it back (it never committed)."""
    before = dump_all(binlog_url)
    run_killed(AGENT, journal.url, binlog_url, "after_prepare")
    [run] = journal.list_runs()
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.PENDING
    assert len(prepared(binlog_url)) == 1  # holding its locks until someone decides
    [outcome] = goex.recover(journal)
    assert outcome.resolution == "failed", outcome.detail
    assert prepared(binlog_url) == []
    assert dump_all(binlog_url) == before


def test_mysql_killed_after_commit_is_applied_by_recover_and_undone(
    binlog_url: str, journal: Journal
) -> None:
    before = dump_all(binlog_url)
    run_killed(AGENT, journal.url, binlog_url, "after_commit")
    [run] = journal.list_runs()
    assert dump_all(binlog_url) != before
    [outcome] = goex.recover(journal)
    assert outcome.resolution == "applied", outcome.detail
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(binlog_url) == before


def test_mysql_crash_whose_log_is_purged_stays_unknown(binlog_url: str, journal: Journal) -> None:
    """Committed, but the binary log that says so is gone: recover does not guess."""
    run_killed(AGENT, journal.url, binlog_url, "after_commit")
    purge_logs(binlog_url)
    [outcome] = goex.recover(journal)
    assert outcome.resolution == "unknown"
    [run] = journal.list_runs()
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.PENDING


def test_mysql_undo_killed_after_its_commit_runs_again_as_a_no_op(
    binlog_url: str, journal: Journal
) -> None:
    """The undo is an XA transaction noted in the journal once prepared: killed between its
    commit and the `compensated` mark, the next rollback finds it committed and does nothing
    (instead of stopping on a conflict with goex's own changes)."""
    before = dump_all(binlog_url)
    with goex.run("undone twice", journal=journal) as run:
        run_sql("UPDATE orders SET status = 'held' WHERE id = 2; DELETE FROM tags", binlog_url)
    run_killed(ROLLBACK, run.id, journal.url)
    assert dump_all(binlog_url) == before  # the undo committed
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.COMPENSATING
    [outcome] = goex.recover(journal)
    assert outcome.resolution == "released"
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(binlog_url) == before
    assert journal.get_step(step.id).status is StepStatus.COMPENSATED


def test_mysql_batch_failing_half_way_changes_nothing(binlog_url: str, journal: Journal) -> None:
    before = dump_all(binlog_url)
    batch = "DELETE FROM order_lines WHERE order_id = 1; INSERT INTO orders (id, customer_id, "
    batch += "amount) VALUES (1, 1, 0)"
    with goex.run("half", journal=journal) as run, pytest.raises(sa.exc.IntegrityError):
        run_sql(batch, binlog_url)
    assert dump_all(binlog_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED
    assert prepared(binlog_url) == []
