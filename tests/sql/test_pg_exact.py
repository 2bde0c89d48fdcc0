"""PostgreSQL values that must come back byte for byte, not merely equal: `json` text (key
order, duplicate keys, whitespace, numbers as written), float8 `-0`, NaN and infinities,
numeric scale, and arrays of them; also after a batch lowered extra_float_digits, which
would round floats on their way into the log. Compared as the server's own text, since a
Python dump reads -0.0 == 0.0 and parses JSON into dicts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import GoexError, Journal, StepStatus
from goex_tools.domains.sql import run_sql
from tests.sql.conftest import dump_all, execute_script

DOCS = """
CREATE TABLE docs (id int PRIMARY KEY, body json, score float8, amount numeric,
                   scores float8[], meta jsonb, span interval);
INSERT INTO docs VALUES
    (1, '{"b": 1,  "a": [1, 2.50]}', '-0', 2.50, '{-0,1.5}', '{"k": 1}', '1 year -2 days'),
    (2, '{"x": 1, "x": 2}', 'NaN', 1e-20, '{Infinity}', null, '-1 mon 3 hours'),
    (3, '[ ]', 0.1, 0.10, null, '[]', '00:00:00.000001'),
    (4, '"text"', 1.7976931348623157e308, -0.0, '{5e-324}', '"s"', null);
CREATE TABLE loose (body json, score float8);
INSERT INTO loose VALUES ('{"b":1, "a":2}', '-0'), ('{"a":2,"b":1}', 0);
"""

TEXT = """SELECT id, body::text, score::text, amount::text, scores::text, meta::text, span::text
          FROM docs ORDER BY id"""


def texts(url: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET extra_float_digits = 3")
            docs = [tuple(r) for r in conn.exec_driver_sql(TEXT)]
            loose = sorted(
                tuple(r) for r in conn.exec_driver_sql("SELECT body::text, score::text FROM loose")
            )
            return [*docs, *loose]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "batch",
    [
        "UPDATE docs SET body = '{}', score = 1, amount = 0, scores = '{}', span = '1 day'",
        "DELETE FROM docs",
        "UPDATE docs SET id = id + 10",
        "DELETE FROM loose; INSERT INTO loose VALUES ('{\"z\":  0}', '-0')",
        'UPDATE loose SET score = 3 WHERE body::text = \'{"b":1, "a":2}\'',
        "SELECT set_config('extra_float_digits', '-15', true); "
        "UPDATE docs SET score = score + 1, scores = '{}'; DELETE FROM loose",
    ],
    ids=["update", "delete", "key-update", "keyless", "keyless-update", "rounding-session"],
)
def test_postgres_undo_restores_json_text_and_float_bits_exactly(
    postgres_url: str, journal: Journal, batch: str
) -> None:
    execute_script(postgres_url, DOCS)
    before, dumped = texts(postgres_url), others(postgres_url)
    with goex.run("exact", journal=journal) as run:
        run_sql(batch, postgres_url)
    assert texts(postgres_url) != before
    assert goex.rollback(run.id, journal=journal).complete
    assert texts(postgres_url) == before
    assert others(postgres_url) == dumped


def others(url: str) -> dict[str, object]:
    """Every other table (a NaN is not equal to itself in a Python dump)."""
    return {k: v for k, v in dump_all(url).items() if k != "docs"}


def test_postgres_json_with_outer_whitespace_is_refused_not_trimmed(
    postgres_url: str, journal: Journal
) -> None:
    """json_populate_record drops the whitespace around a json value and rewrites the escapes
    of a json string, so a row holding one could not be rebuilt exactly: a batch changing it
    fails and is rolled back."""
    execute_script(postgres_url, DOCS + "INSERT INTO docs (id, body) VALUES (5, ' [1] ');")
    before = texts(postgres_url)
    with goex.run("spaces", journal=journal) as run, pytest.raises(GoexError) as raised:
        run_sql("UPDATE docs SET score = 1", postgres_url)
    assert "public.docs" in str(raised.value) and "whitespace" in str(raised.value)
    assert texts(postgres_url) == before
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.FAILED]
    execute_script(postgres_url, """UPDATE docs SET body = '"te\\u0078t"' WHERE id = 5""")
    before = texts(postgres_url)
    with goex.run("escapes", journal=journal), pytest.raises(GoexError, match="escape"):
        run_sql("DELETE FROM docs WHERE id = 5", postgres_url)
    assert texts(postgres_url) == before
    with goex.run("others", journal=journal):  # rows without such values are undone as usual
        run_sql("UPDATE docs SET score = 1 WHERE id < 5", postgres_url)


def test_postgres_json_text_changed_since_is_a_conflict(
    postgres_url: str, journal: Journal
) -> None:
    """Reformatting a json value (same value as jsonb) is a change: the undo must not treat
    the row as untouched and overwrite someone's text."""
    execute_script(postgres_url, DOCS)
    with goex.run("exact", journal=journal) as run:
        run_sql("UPDATE docs SET score = 7 WHERE id = 1", postgres_url)
    execute_script(
        postgres_url, """UPDATE docs SET body = '{"a": [1, 2.50], "b": 1}' WHERE id = 1"""
    )
    theirs = texts(postgres_url)
    with pytest.raises(goex.RollbackFailed, match="changed since"):
        goex.rollback(run.id, journal=journal)
    assert texts(postgres_url) == theirs
