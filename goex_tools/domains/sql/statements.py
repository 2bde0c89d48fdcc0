"""Classifying SQL before it runs: split a batch into statements, and say what each one is.

sqlglot parses each statement in the database's dialect; the kind (read, write, DDL, other)
and the tables it names come from the syntax tree, never from pattern matching on the text.
"""

from __future__ import annotations

import functools
from typing import Literal

import sqlglot
from pydantic import BaseModel
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from goex_tools.domains.sql.errors import InvalidSql

StatementKind = Literal["read", "write", "ddl", "other"]

SQLGLOT_DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}
WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
DDL = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
TRANSACTION_CONTROL = (exp.Transaction, exp.Commit, exp.Rollback)
# First words of transaction control sqlglot does not parse as such (it reads `ABORT` or
# `START TRANSACTION` as a bare column expression): a batch must not end goex-tools' transaction.
# Server functions whose effect no transaction takes back, or that reach another database: a
# statement calling one is neither a read nor a write row capture could undo ("other").
SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
        "pg_switch_wal", "pg_promote", "pg_create_restore_point", "pg_drop_replication_slot",
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
        "dblink", "dblink_exec", "dblink_send_query", "lo_export", "lo_import", "lo_unlink",
        "pg_file_write", "pg_file_unlink", "pg_file_rename", "load_extension",
    }
)  # fmt: skip
DDL_WORDS = frozenset({"CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"})  # whatever follows
UNCOUNTED_BLOCKS = frozenset({"IF", "LOOP", "WHILE", "REPEAT"})
LITERAL_ROWS = frozenset(
    {
        TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA, TokenType.NUMBER,
        TokenType.STRING, TokenType.NULL, TokenType.TRUE, TokenType.FALSE, TokenType.DASH,
        TokenType.PLUS, TokenType.HEX_STRING, TokenType.BIT_STRING, TokenType.BYTE_STRING,
        TokenType.NATIONAL_STRING,
    }
)  # fmt: skip
TRANSACTION_WORDS = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "XA"}
)


class Statement(BaseModel):
    """One statement of a batch, as the contract's `predicted.statements` lists it."""

    sql: str
    kind: StatementKind
    tables: list[str]


def classify(sql: str, dialect: str) -> list[Statement]:
    """Split `sql` into statements and classify each; raises InvalidSql on malformed input."""
    read = SQLGLOT_DIALECTS.get(dialect)
    statements = [_classify_one(text, part, sql, read) for text, part in _pieces(sql, read)]
    if not statements:
        raise InvalidSql("no SQL statement given")
    return statements


def split(sql: str, dialect: str | None) -> list[str]:
    """The statement texts of a batch, exactly as written (split at top-level semicolons).

    Semicolons inside the BEGIN ... END body of a CREATE TRIGGER / FUNCTION / PROCEDURE
    belong to that statement.
    """
    return [text for text, _ in _pieces(sql, dialect)]


@functools.lru_cache(maxsize=4)
def tokens_of(sql: str, dialect: str | None) -> list[Token]:
    """The batch's tokens (tokenized once: a 500 KB batch takes most of a second)."""
    try:
        return sqlglot.tokenize(sql, read=dialect)
    except TokenError as exc:
        raise InvalidSql(f"cannot read the SQL: {exc}") from None


def _pieces(sql: str, dialect: str | None) -> list[tuple[str, list[Token]]]:
    """Each statement's text and tokens (see `split`)."""
    tokens = tokens_of(sql, dialect)
    found: list[tuple[str, list[Token]]] = []
    first: int | None = None
    creates = False  # the statement is a CREATE: track its BEGIN/CASE ... END blocks
    depth = 0
    for i, token in enumerate(tokens):
        if token.token_type is TokenType.SEMICOLON and depth == 0:
            if first is not None:
                found.append(_piece(sql, tokens[first:i]))
            first = None
            continue
        if first is None:
            first, creates = i, token.token_type is TokenType.CREATE
        if creates:
            depth = max(0, depth + _block_step(tokens, i))
    if first is not None:
        found.append(_piece(sql, tokens[first:]))
    return found


def _piece(sql: str, tokens: list[Token]) -> tuple[str, list[Token]]:
    return sql[tokens[0].start : tokens[-1].end + 1], tokens


def _block_step(tokens: list[Token], i: int) -> int:
    """+1 where a block opens (BEGIN, CASE), -1 where one closes (END, END CASE; not MySQL's
    END IF / END LOOP / END WHILE / END REPEAT, whose openers are not counted)."""
    token = tokens[i]
    after_end = i > 0 and tokens[i - 1].token_type is TokenType.END
    if token.token_type is TokenType.BEGIN or (
        token.token_type is TokenType.CASE and not after_end
    ):
        return 1
    if token.token_type is TokenType.END:
        following = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
        return 0 if following in UNCOUNTED_BLOCKS else -1
    return 0


def _classify_one(text: str, tokens: list[Token], batch: str, dialect: str | None) -> Statement:
    words = [token.text.upper() for token in tokens[:2]]
    if _controls_transaction(words):
        raise _transaction_control(text)
    try:
        tree = _parsed(tokens, batch, dialect) or sqlglot.parse_one(text, read=dialect)
    except (ParseError, TokenError) as exc:
        if words[0] in DDL_WORDS:  # a trigger or procedure body sqlglot cannot read
            return Statement(sql=text, kind="ddl", tables=[])
        raise InvalidSql(f"malformed SQL in {_short(text)!r}: {_first_line(exc)}") from None
    if isinstance(tree, TRANSACTION_CONTROL):
        raise _transaction_control(text)
    kind = "ddl" if words[0] in DDL_WORDS else _kind(tree)
    return Statement(sql=text, kind=kind, tables=_tables(tree))


def _parsed(tokens: list[Token], batch: str, dialect: str | None) -> exp.Expr | None:
    """The statement parsed from its tokens (no second tokenizing), an INSERT of literal rows
    from its first row only (its other rows can change neither its kind nor its tables);
    None where that does not give one tree (the caller parses the text itself)."""
    try:
        parser = sqlglot.Dialect.get_or_raise(dialect).parser()
        found = parser.parse(_first_literal_row(tokens), batch)
    except (ParseError, TokenError):
        return None
    return found[0] if len(found) == 1 and found[0] is not None else None


def _first_literal_row(tokens: list[Token]) -> list[Token]:
    """`INSERT ... VALUES (row), (row), ...` of literals only: up to its first row."""
    if not tokens or tokens[0].token_type is not TokenType.INSERT:
        return tokens
    at = next((i for i, t in enumerate(tokens) if t.token_type is TokenType.VALUES), None)
    rows = tokens[at + 1 :] if at is not None else []
    if not rows or any(t.token_type not in LITERAL_ROWS for t in rows):
        return tokens
    depth = 0
    for i, token in enumerate(rows):
        depth += (token.token_type is TokenType.L_PAREN) - (token.token_type is TokenType.R_PAREN)
        if depth == 0:
            return tokens[: at + 2 + i] if at is not None else tokens
    return tokens


def _transaction_control(text: str) -> InvalidSql:
    return InvalidSql(
        f"{_short(text)!r}: transaction control is goex-tools' job; run_sql runs the whole "
        f"batch in one transaction and commits or rolls it back itself"
    )


def _controls_transaction(words: list[str]) -> bool:
    """Transaction control by its first words (sqlglot reads PREPARE's rest as one string)."""
    if words[0] == "PREPARE":
        return words[1:2] != [] and words[1].split()[:1] == ["TRANSACTION"]
    return words[0] in TRANSACTION_WORDS


def _kind(tree: exp.Expr) -> StatementKind:
    if isinstance(tree, DDL) or (isinstance(tree, exp.Select) and tree.args.get("into")):
        return "ddl"
    if {f.name.lower() for f in tree.find_all(exp.Anonymous)} & SIDE_EFFECT_FUNCTIONS:
        return "other"
    if isinstance(tree, WRITES) or tree.find(*WRITES) is not None:
        return "write"  # includes data-modifying CTEs inside a SELECT
    if isinstance(tree, exp.Query) or _inspects(tree):
        return "read"
    return "other"


def _inspects(tree: exp.Expr) -> bool:
    """SHOW, DESCRIBE, EXPLAIN: reads. (EXPLAIN ANALYZE runs its statement, but reads run in a
    read-only transaction, so the database refuses one that writes.)"""
    if isinstance(tree, exp.Show | exp.Describe):
        return True
    return isinstance(tree, exp.Command) and tree.name.upper() in ("SHOW", "EXPLAIN")


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
