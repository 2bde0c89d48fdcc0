"""An undo never leaves a broken foreign key: when someone else's later rows reference a row
the undo would remove, or removed the parent of a row the undo would restore, the rollback is
refused (forced or not) and the database stays as they left it. PostgreSQL undoes with
foreign-key actions off (`session_replication_role = replica`), so goex-tools checks the
affected constraints itself; SQLite's changeset apply checks them."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import Journal, RollbackFailed, StepStatus
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all, execute_script


@pytest.mark.parametrize("force", [False, True])
def test_a_row_others_now_reference_is_not_removed(
    db_url: str, journal: Journal, force: bool
) -> None:
    with goex.run("parent", journal=journal) as run:
        run_sql("INSERT INTO customers (name) VALUES ('dee')", db_url)
    execute_script(db_url, "INSERT INTO orders (customer_id, amount) VALUES (4, 1);")
    theirs = dump_all(db_url)
    with pytest.raises(RollbackFailed, match="foreign key") as failed:
        goex.rollback(run.id, journal=journal, force=force)
    assert "customers" in str(failed.value) or "orders" in str(failed.value)
    assert dump_all(db_url) == theirs
    assert journal.steps(run.id)[0].status is StepStatus.COMPENSATION_FAILED


@pytest.mark.parametrize("force", [False, True])
def test_a_row_whose_parent_others_removed_is_not_restored(
    db_url: str, journal: Journal, force: bool
) -> None:
    with goex.run("child", journal=journal) as run:
        run_sql("DELETE FROM order_lines WHERE order_id = 3", db_url)
    execute_script(db_url, "DELETE FROM orders WHERE id = 3;")
    theirs = dump_all(db_url)
    with pytest.raises(RollbackFailed, match="foreign key"):
        goex.rollback(run.id, journal=journal, force=force)
    assert dump_all(db_url) == theirs


def test_restoring_parent_and_children_together_is_fine(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    with goex.run("both", journal=journal) as run:
        run_sql(
            "UPDATE order_lines SET order_id = 4, line = 9 WHERE order_id = 3; "
            "DELETE FROM orders WHERE id = 3; "
            "INSERT INTO customers (name) VALUES ('dee'); "
            "INSERT INTO orders (customer_id, amount) SELECT id, 3 FROM customers "
            "WHERE name = 'dee'",
            db_url,
        )
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before
