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


ACCOUNTS = '"Sales Dept"."Key ""Accts"" 2024"'  # schema and table names that need quoting


def test_odd_names_and_composite_keys_across_schemas(postgres_url: str, journal: Journal) -> None:
    execute_script(
        postgres_url,
        f"""
        CREATE SCHEMA "Sales Dept";
        CREATE TABLE {ACCOUNTS} ("Region" text, "No" int, label text, PRIMARY KEY ("Region", "No"));
        CREATE TABLE "Visits" (id int PRIMARY KEY, "Region" text, "No" int,
            FOREIGN KEY ("Region", "No") REFERENCES {ACCOUNTS} ON DELETE CASCADE);
        INSERT INTO {ACCOUNTS} VALUES ('eu', 1, 'a'), ('us', 1, 'b');
        INSERT INTO "Visits" VALUES (1, 'eu', 1), (2, 'eu', 1), (3, 'us', 1), (4, NULL, 1);
        """,
    )
    before = dump_all(postgres_url)
    with goex.run("odd", journal=journal) as run:
        run_sql(f"""DELETE FROM {ACCOUNTS} WHERE "Region" = 'eu'""", postgres_url)
    assert len(dump_all(postgres_url)["Visits"]) == 2
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before

    with goex.run("odd again", journal=journal) as run:
        run_sql(f"INSERT INTO {ACCOUNTS} VALUES ('ap', 2, 'c')", postgres_url)
    execute_script(postgres_url, "INSERT INTO \"Visits\" VALUES (5, 'ap', 2);")
    theirs = dump_all(postgres_url)
    with pytest.raises(RollbackFailed, match=r"Visits.*\(added since\).*ap, 2"):
        goex.rollback(run.id, journal=journal, force=True)
    assert dump_all(postgres_url) == theirs
