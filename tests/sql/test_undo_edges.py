"""The cases a naive before-image misses, on a real SQLite file and a real PostgreSQL server:
generated keys and defaults, the same row changed several times in one batch, upserts,
correlated subqueries, whole-table deletes (SQLite's truncate optimization), tables without a
primary key; TRUNCATE declared irreversible; a connection dropped in the middle of an undo.
Every check compares a dump of ALL tables."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import ActionRefused, Journal, Reversibility, RollbackFailed, RunStatus, StepStatus
from goex_tools.domains.sql import postgres, propose, run_sql, sqlite
from tests.sql.conftest import RefuseIrreversible, dump_all, execute_script

SAME_ROWS_AGAIN = """
INSERT INTO customers (name) VALUES ('zed');
UPDATE customers SET tier = 'gold' WHERE name = 'zed';
UPDATE customers SET tier = 'silver' WHERE name IN ('zed', 'bob');
INSERT INTO order_lines (order_id, line, sku) VALUES (1, 1, 'quill'), (1, 3, 'nib')
    ON CONFLICT (order_id, line) DO UPDATE SET sku = excluded.sku;
UPDATE orders SET amount = (SELECT count(*) FROM order_lines l WHERE l.order_id = orders.id)
    WHERE EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = orders.id AND l.sku = 'pen');
UPDATE orders SET status = 'held' WHERE id = (SELECT max(id) FROM orders);
DELETE FROM customers WHERE name = 'zed';
DELETE FROM tags WHERE weight = 1;
INSERT INTO tags VALUES ('z', 3), ('z', 3);
"""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def test_the_proposal_says_how_a_write_will_be_undone(db_url: str) -> None:
    proposal = propose("DELETE FROM customers WHERE id = 1", db_url)
    assert proposal.reversibility is Reversibility.REVERSIBLE
    mechanism = sqlite.MECHANISM if is_sqlite(db_url) else postgres.MECHANISM
    kind = sqlite.KIND if is_sqlite(db_url) else postgres.KIND
    assert proposal.predicted["reversible_by"] == mechanism
    assert proposal.compensation is not None and proposal.compensation.kind == kind
    assert proposal.notes[0].startswith(f"reversible by {mechanism}")
    assert "cascades" in proposal.notes[0] and "triggers" in proposal.notes[0]
    if not is_sqlite(db_url):
        assert "sequence" in proposal.notes[0]  # PostgreSQL does not give numbers back


def test_rows_changed_several_times_upserts_and_subqueries(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    with goex.run("again", journal=journal) as run:
        result = run_sql(SAME_ROWS_AGAIN, db_url)
    changed = dump_all(db_url)
    lines = [r for r in changed["order_lines"] if r[0] == 1]
    assert lines == [(1, 1, "quill"), (1, 2, "ink"), (1, 3, "nib")]
    assert ("z", 3) in changed["tags"] and ("x", 1) not in changed["tags"]
    assert result.changes is not None and result.changes.tables["audit"].inserted == 2
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before


def test_deleting_every_row_of_every_table_is_undone(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    with goex.run("wipe", journal=journal) as run:
        result = run_sql("DELETE FROM customers; DELETE FROM tags", db_url)
    wiped = dump_all(db_url)
    assert not any(wiped[t] for t in ("customers", "orders", "order_lines", "tags"))
    assert result.changes is not None
    assert result.changes.tables["order_lines"].deleted == 5  # all by ON DELETE CASCADE
    assert result.changes.tables["tags"].deleted == 3  # no primary key, duplicate rows
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before


def test_generated_keys_and_defaults_are_undone(db_url: str, journal: Journal) -> None:
    """Every table returns to its start. SQLite's AUTOINCREMENT counter is put back too;
    PostgreSQL sequences are not transactional and are not rewound (the next key skips)."""
    before = dump_all(db_url)
    with goex.run("keys", journal=journal) as run:
        result = run_sql(
            "INSERT INTO customers (name) VALUES ('dee'); "
            "INSERT INTO orders (customer_id, amount) SELECT id, 1 FROM customers "
            "WHERE name = 'dee'; "
            "INSERT INTO order_lines SELECT id, 1, 'cup' FROM orders WHERE amount = 1",
            db_url,
        )
    assert result.changes is not None
    [customer] = result.changes.tables["customers"].rows
    assert customer.after is not None
    assert customer.after["id"] == 4 and customer.after["tier"] == "basic"  # key and default
    [order] = result.changes.tables["orders"].rows
    assert order.after is not None and (order.after["id"], order.after["status"]) == (5, "new")
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before

    with goex.run("next", journal=journal):
        again = run_sql("INSERT INTO customers (name) VALUES ('eve')", db_url)
    assert again.changes is not None
    after = again.changes.tables["customers"].rows[0].after
    assert after is not None and after["id"] == (4 if is_sqlite(db_url) else 5)


def test_truncate_is_declared_irreversible_and_can_be_refused(
    postgres_url: str, journal: Journal
) -> None:
    sql = "TRUNCATE order_lines, orders RESTART IDENTITY"
    proposal = propose(sql, postgres_url)
    assert proposal.reversibility is Reversibility.IRREVERSIBLE and proposal.compensation is None
    assert proposal.predicted["statements"] == [
        {"sql": sql, "kind": "ddl", "tables": ["order_lines", "orders"]}
    ]
    assert proposal.notes[0].startswith("irreversible: ddl statement 'TRUNCATE")

    before = dump_all(postgres_url)
    refuse = RefuseIrreversible()
    with goex.run("refused", journal=journal, gate=refuse) as run, pytest.raises(ActionRefused):
        run_sql(sql, postgres_url)
    assert dump_all(postgres_url) == before
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.REFUSED]

    with goex.run("allowed", journal=journal) as run:
        run_sql(sql, postgres_url)
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE and step.compensation is None
    assert "TRUNCATE" in step.notes[0] and "row capture cannot undo" in step.notes[0]
    assert dump_all(postgres_url)["orders"] == []
    with pytest.raises(RollbackFailed):
        goex.rollback(run.id, journal=journal)  # stops at the irreversible step
    assert dump_all(postgres_url)["orders"] == []  # and claims nothing


def test_a_connection_dropped_in_the_middle_of_an_undo_leaves_nothing_half_done(
    postgres_url: str, journal: Journal
) -> None:
    """The undo is one transaction: killed half-way (after it restored some tables, while it
    waits for a lock on another), it restores nothing, and running it again finishes it."""
    before = dump_all(postgres_url)
    with goex.run("cascade", journal=journal) as run:
        run_sql("DELETE FROM customers WHERE id = 1", postgres_url)
    changed = dump_all(postgres_url)

    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    blocker = engine.connect()
    blocker.exec_driver_sql("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    blocker_pid = blocker.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    killed: list[str] = []

    def kill_the_waiting_undo() -> None:
        # autocommit: each poll its own transaction, so pg_stat_activity is not a stale snapshot
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
            for _ in range(200):
                found = admin.exec_driver_sql(
                    "SELECT pid, query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    f"AND datname = current_database() AND pid <> {blocker_pid}"
                ).first()
                if found is not None:
                    admin.exec_driver_sql(f"SELECT pg_terminate_backend({found[0]})")
                    killed.append(str(found[1]))
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_the_waiting_undo)
    killer.start()
    try:
        with pytest.raises(RollbackFailed, match="connection"):
            goex.rollback(run.id, journal=journal, retry=goex.RetryPolicy(attempts=1))
    finally:
        killer.join()
        blocker.rollback()
        blocker.close()
        engine.dispose()
    assert killed, "the undo never waited for the lock on customers"
    assert dump_all(postgres_url) == changed  # the orders and lines it restored: rolled back
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.COMPENSATION_FAILED
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before
    assert journal.get_run(run.id).status is RunStatus.ROLLED_BACK


def test_partitioned_tables_and_rows_moving_between_partitions(
    postgres_url: str, journal: Journal
) -> None:
    execute_script(
        postgres_url,
        """
        CREATE TABLE events (id int, region text, n int, PRIMARY KEY (id, region))
            PARTITION BY LIST (region);
        CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
        CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
        INSERT INTO events VALUES (1, 'eu', 1), (2, 'eu', 2), (3, 'us', 3);
        """,
    )
    before = dump_all(postgres_url)
    with goex.run("partitions", journal=journal) as run:
        run_sql(
            "UPDATE events SET region = 'us', n = n + 10 WHERE id = 1; "
            "DELETE FROM events WHERE region = 'us' AND id = 3; "
            "INSERT INTO events VALUES (4, 'eu', 4)",
            postgres_url,
        )
    changed = dump_all(postgres_url)
    assert changed["events_us"] == [(1, "us", 11)]
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before


def test_key_updates_with_on_update_cascade_and_on_delete_set_null(
    db_url: str, journal: Journal
) -> None:
    execute_script(
        db_url,
        """
        CREATE TABLE shelves (code TEXT PRIMARY KEY, room TEXT);
        CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT,
            shelf TEXT REFERENCES shelves(code) ON UPDATE CASCADE ON DELETE SET NULL);
        INSERT INTO shelves VALUES ('A1', 'hall'), ('B1', 'attic'), ('C1', 'cellar');
        INSERT INTO books VALUES (1, 'odyssey', 'A1'), (2, 'iliad', 'B1'), (3, 'aeneid', 'C1'),
            (4, 'georgics', 'B1');
        """,
    )
    before = dump_all(db_url)
    with goex.run("keys", journal=journal) as run:
        result = run_sql(
            "UPDATE shelves SET code = 'B2', room = 'loft' WHERE code = 'B1'; "
            "DELETE FROM shelves WHERE code = 'C1'; "
            "UPDATE books SET id = id + 100 WHERE shelf = 'A1'",
            db_url,
        )
    changed = dump_all(db_url)
    assert sorted(changed["books"]) == [
        (2, "iliad", "B2"), (3, "aeneid", None), (4, "georgics", "B2"), (101, "odyssey", "A1")
    ]  # fmt: skip
    assert result.changes is not None and result.changes.tables["books"].rows
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before


def test_a_write_to_a_foreign_table_stops_the_batch(postgres_url: str, journal: Journal) -> None:
    """postgres_fdw rows live on another server, beyond row capture: the batch is rolled back
    (remote side included) and the step fails with the reason; nothing changes anywhere."""
    url = sa.engine.make_url(postgres_url)
    execute_script(
        postgres_url,
        f"""
        CREATE EXTENSION postgres_fdw;
        CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw
            OPTIONS (host '{url.host}', port '{url.port or 5432}', dbname '{url.database}');
        CREATE USER MAPPING FOR CURRENT_USER SERVER loop OPTIONS (user '{url.username}');
        CREATE FOREIGN TABLE remote_tags (label text, weight integer)
            SERVER loop OPTIONS (table_name 'tags');
        """,
    )
    before = dump_all(postgres_url)
    with goex.run("fdw", journal=journal) as run, pytest.raises(sa.exc.DBAPIError) as raised:
        run_sql(
            "DELETE FROM orders WHERE id = 1; INSERT INTO remote_tags VALUES ('r', 1)", postgres_url
        )
    assert "foreign table public.remote_tags" in str(raised.value)
    assert dump_all(postgres_url) == before  # `tags`, the remote side, included
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.undoable
    with goex.run("read", journal=journal):
        assert run_sql("SELECT count(*) FROM remote_tags", postgres_url).results[0].rows == [[3]]


def test_a_trigger_that_changes_the_same_row_again_is_undone_in_order(
    postgres_url: str, journal: Journal
) -> None:
    """A user trigger whose name sorts before goex's reacts to an update by updating the same
    row again (twice, nested): the capture logs the outer event first, so the undo restores
    the row's value from before the batch, with no false conflict."""
    execute_script(
        postgres_url,
        "CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL);"
        "INSERT INTO counters VALUES (1, 0), (2, 10);"
        "CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE counters SET v = v + 1 WHERE id = NEW.id; RETURN NULL; END $$;"
        "CREATE TRIGGER a_bump AFTER UPDATE ON counters FOR EACH ROW WHEN (NEW.v < 3) "
        "EXECUTE FUNCTION bump();",
    )
    before = dump_all(postgres_url)
    with goex.run("bumped", journal=journal) as run:
        result = run_sql("UPDATE counters SET v = 1 WHERE id = 1", postgres_url)
    assert result.changes is not None and result.changes.tables["counters"].updated == 3
    assert dump_all(postgres_url)["counters"] == [(1, 3), (2, 10)]
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before
