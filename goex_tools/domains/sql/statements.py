"""Classifying SQL before it runs: split a batch into statements, and say what each one is.

sqlglot parses each statement in the database's dialect; the kind (read, write, DDL, other)
and the tables it names come from the syntax tree, never from pattern matching on the text.
"""

from __future__ import annotations

from typing import Literal

import sqlglot
from pydantic import BaseModel
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType

from goex_tools.errors import GoexError

StatementKind = Literal["read", "write", "ddl", "other"]

SQLGLOT_DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}
WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
DDL = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
TRANSACTION_CONTROL = (exp.Transaction, exp.Commit, exp.Rollback)


class InvalidSql(GoexError):
    """SQL that cannot be parsed, or that run_sql must not run (transaction control)."""


class Statement(BaseModel):
    """One statement of a batch, as the contract's `predicted.statements` lists it."""

    sql: str
    kind: StatementKind
    tables: list[str]


def classify(sql: str, dialect: str) -> list[Statement]:
    """Split `sql` into statements and classify each; raises InvalidSql on malformed input."""
    read = SQLGLOT_DIALECTS.get(dialect)
    statements = [_classify_one(text, read) for text in split(sql, read)]
    if not statements:
        raise InvalidSql("no SQL statement given")
    return statements


def split(sql: str, dialect: str | None) -> list[str]:
    """The statement texts of a batch, exactly as written (split at top-level semicolons)."""
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except TokenError as exc:
        raise InvalidSql(f"cannot read the SQL: {exc}") from None
    texts: list[str] = []
    start: int | None = None
    end = 0
    for token in tokens:
        if token.token_type is TokenType.SEMICOLON:
            if start is not None:
                texts.append(sql[start : end + 1])
            start = None
            continue
        if start is None:
            start = token.start
        end = token.end
    if start is not None:
        texts.append(sql[start : end + 1])
    return texts


def _classify_one(text: str, dialect: str | None) -> Statement:
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except (ParseError, TokenError) as exc:
        raise InvalidSql(f"malformed SQL in {_short(text)!r}: {_first_line(exc)}") from None
    if isinstance(tree, TRANSACTION_CONTROL):
        raise InvalidSql(
            f"{_short(text)!r}: transaction control is goex-tools' job; run_sql runs the whole "
            f"batch in one transaction and commits or rolls it back itself"
        )
    return Statement(sql=text, kind=_kind(tree), tables=_tables(tree))


def _kind(tree: exp.Expr) -> StatementKind:
    if isinstance(tree, DDL) or (isinstance(tree, exp.Select) and tree.args.get("into")):
        return "ddl"
    if isinstance(tree, WRITES) or tree.find(*WRITES) is not None:
        return "write"  # includes data-modifying CTEs inside a SELECT
    if isinstance(tree, exp.Query):
        return "read"
    return "other"


def _tables(tree: exp.Expr) -> list[str]:
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names: list[str] = []
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        name = f"{table.db}.{table.name}" if table.db else table.name
        if name not in names:
            names.append(name)
    return names


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
