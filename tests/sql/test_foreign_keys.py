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
@pytest.mark.parametrize(
    ("ours", "theirs", "named"),
    [  # they reference the row the undo would remove
        (
            "INSERT INTO customers (name) VALUES ('dee')",
            "INSERT INTO orders (customer_id, amount) VALUES (4, 1);",
            "customers",
        ),
        # they removed the parent of the rows the undo would restore
        ("DELETE FROM order_lines WHERE order_id = 3", "DELETE FROM orders WHERE id = 3;", "order"),
    ],
    ids=["referenced-since", "parent-gone"],
)
def test_an_undo_that_would_break_a_foreign_key_is_refused(
    db_url: str, journal: Journal, force: bool, ours: str, theirs: str, named: str
) -> None:
    with goex.run("fk", journal=journal) as run:
        run_sql(ours, db_url)
    execute_script(db_url, theirs)
    state = dump_all(db_url)
    with pytest.raises(RollbackFailed, match="foreign key") as failed:
        goex.rollback(run.id, journal=journal, force=force)
    assert named in str(failed.value) and "force cannot override" in str(failed.value)
    assert dump_all(db_url) == state
    assert journal.steps(run.id)[0].status is StepStatus.COMPENSATION_FAILED


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
