"""Row images that hold a secret value: never journaled, and never restored masked."""

from __future__ import annotations

import pytest

import goex_tools as goex
from goex_tools import Journal
from goex_tools.domains.sql import run_sql
from goex_tools.redaction import UNDO_HELD_A_SECRET, redactor
from tests.sql.conftest import dump_all, execute_script

SECRET = "sk-live-4f9c2a7e1b"


@pytest.mark.parametrize("statement", ["UPDATE tags SET label = 'gone'", "DELETE FROM tags"])
def test_sql_undo_of_rows_holding_a_secret_is_unavailable_not_masked(
    db_url: str, journal: Journal, statement: str
) -> None:
    execute_script(db_url, f"INSERT INTO tags VALUES ('{SECRET}', 9);")
    redactor.add_secret(SECRET)
    with goex.run("clear", journal=journal) as run:
        run_sql(statement, db_url)
    after = dump_all(db_url)
    [step] = journal.steps(run.id)
    assert SECRET not in step.model_dump_json()
    assert step.compensation is not None
    assert step.compensation.unavailable == UNDO_HELD_A_SECRET
    report = goex.rollback(run.id, journal=journal, on_irreversible="skip")
    assert [o.outcome for o in report.outcomes] == ["irreversible"]
    assert dump_all(db_url) == after  # nothing written back, no "[REDACTED]" row
