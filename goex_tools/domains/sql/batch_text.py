"""A batch's SQL text in a proposal and in the journal: once, and compressed when large.

A proposal carries the batch twice over: as run_sql was given it (`inputs["sql"]`) and
statement by statement (`predicted["statements"]`), and the journal writes the predicted
effect again at every transition of the step. A 5 MB literal grew the journal by 44.5 MB.
Up to INLINE characters nothing changes. A longer batch is carried once: `inputs["sql"]`
becomes an excerpt, `inputs["sql_zlib"]` the whole text (zlib, base64), and each statement
an excerpt with its `span` in the batch. `batch_sql` and `statement_sql` give the full texts
back, from a proposal or from a journaled step.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from typing import Any

from goex_tools.domains.sql.statements import Statement
from goex_tools.model import JSONDict
from goex_tools.redaction import holds_secret

INLINE = 1_000  # characters of a batch carried as they are
EXCERPT = 120  # characters of a long batch or statement shown


def inputs(sql: str, database: str) -> JSONDict:
    """The proposal's inputs for a batch. (A batch holding a secret value stays plain, so that
    the journal can mask it: compressed, it could not.)"""
    if not long(sql):
        return {"sql": sql, "database": database}
    return {
        "sql": _excerpt(sql),
        "sql_chars": len(sql),
        "sql_zlib": base64.b64encode(zlib.compress(sql.encode(), 6)).decode(),
        "database": database,
    }


def statements(sql: str, parsed: list[Statement]) -> list[JSONDict]:
    """The proposal's `predicted["statements"]`: each statement whole for a short batch, an
    excerpt and its span in the batch for a long one."""
    if not long(sql):
        return [s.model_dump() for s in parsed]
    found, at = [], 0
    for statement in parsed:
        start = sql.find(statement.sql, at)
        at = start + len(statement.sql)
        found.append(
            {**statement.model_dump(), "sql": _excerpt(statement.sql), "span": [start, at]}
        )
    return found


def long(sql: str) -> bool:
    """Is the batch carried once, compressed?"""
    return len(sql) > INLINE and not holds_secret(sql)


def batch_sql(given: Mapping[str, Any]) -> str:
    """The whole batch from a proposal's (or journaled step's) inputs."""
    packed = given.get("sql_zlib")
    if isinstance(packed, str):
        return zlib.decompress(base64.b64decode(packed)).decode()
    return str(given.get("sql") or "")


def statement_sql(given: Mapping[str, Any], predicted: Mapping[str, Any]) -> list[str]:
    """Every statement's whole text, from a proposal's inputs and predicted effect."""
    listed = predicted.get("statements") or []
    if not any("span" in s for s in listed):
        return [str(s["sql"]) for s in listed]
    whole = batch_sql(given)
    return [whole[s["span"][0] : s["span"][1]] for s in listed]


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT:
        return text
    return f"{text[:EXCERPT]}... ({len(text):,} characters)"
