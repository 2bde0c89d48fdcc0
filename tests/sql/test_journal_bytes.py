"""A long batch is journaled once, compressed: its text, its statements and its row images
(a 5 MB literal grew the journal by 44.5 MB, three copies written at every transition).
Policy still sees every statement whole, and the undo is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal
from goex_tools.domains.sql import postgres_undo, run_sql
from goex_tools.domains.sql.batch_text import batch_sql, statement_sql
from goex_tools.domains.sql.postgres import RestoreRowsArgs
from goex_tools.policy import Policy
from tests.sql.conftest import dump_all

LITERAL = "lorem ipsum " * 40_000  # 480 KB


def batch() -> str:
    return (
        f"INSERT INTO audit (what) VALUES ('{LITERAL}'), ('{LITERAL}!'); "
        "UPDATE customers SET tier = 'z' WHERE id = 1"
    )


def test_a_long_batch_is_journaled_once_and_compressed(db_url: str, journal: Journal) -> None:
    before = dump_all(db_url)
    sql = batch()
    with goex.run("long", journal=journal) as run:
        run_sql(sql, db_url)
    [step] = journal.steps(run.id)
    assert step.compensation is not None
    stored = sum(
        len(json.dumps(part)) for part in (step.inputs, step.effect, step.compensation.args)
    )
    assert stored < 60_000, stored  # three plain copies were 2.9 MB
    assert len(step.inputs["sql"]) < 200 and "characters" in step.inputs["sql"]
    assert batch_sql(step.inputs) == sql
    statements = step.effect["predicted"]["statements"]
    assert [s["kind"] for s in statements] == ["write", "write"]
    assert statement_sql(step.inputs, step.effect["predicted"]) == [
        sql[: sql.index("; UPDATE")],
        "UPDATE customers SET tier = 'z' WHERE id = 1",
    ]
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before


def test_a_long_batch_is_measured_whole_by_a_row_limit(
    db_url: str, journal: Journal, tmp_path: Path
) -> None:
    """The gate's dry run reads the batch back from the compressed text, not the excerpt."""
    before = dump_all(db_url)
    for limit, allowed in ((2, False), (3, True)):
        path = tmp_path / f"policy-{limit}.yaml"
        path.write_text(f"default: allow\nsql:\n  max_rows_changed: {limit}\n")
        with goex.run("limited", journal=journal, gate=Policy.from_file(path)) as run:
            if allowed:
                run_sql(batch(), db_url)  # 2 audit rows + 1 customer
            else:
                with pytest.raises(ActionRefused, match="max_rows_changed"):
                    run_sql(batch(), db_url)
        assert (dump_all(db_url) == before) is not allowed
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(db_url) == before


def test_a_postgres_undo_journaled_before_packing_still_restores(
    postgres_url: str, journal: Journal
) -> None:
    """Journals written before the row log was packed hold its runs plain: still undone."""
    before = dump_all(postgres_url)
    with goex.run("plain", journal=journal) as run:
        run_sql("DELETE FROM customers WHERE id = 1; UPDATE tags SET weight = 7", postgres_url)
    [step] = journal.steps(run.id)
    assert step.compensation is not None
    packed = RestoreRowsArgs.model_validate(step.compensation.args)
    assert packed.log is not None and not packed.rows
    plain = RestoreRowsArgs(database=packed.database, txid=packed.txid, rows=packed.unpacked())
    postgres_undo.restore(plain.model_dump(mode="json"), force=False)
    assert dump_all(postgres_url) == before
