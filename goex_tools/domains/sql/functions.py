"""Functions a batch calls that goex-tools cannot vouch for: their effects are unknown.

A read-only transaction stops the writes of its own session, and row capture records them,
but neither sees a second connection: a function can write through dblink or postgres_fdw
(or an untrusted language) into this database or another, and no transaction or trigger of
the batch sees it. A batch is therefore of "unknown effects" (irreversible, said before it
runs) when it calls, directly or through a view it reads, a PostgreSQL function that is not
a built-in (any schema but `pg_catalog` and `information_schema`), whatever its volatility (a
STABLE or IMMUTABLE function may still call dblink_exec), unless the function is declared
safe: with `declare_safe_functions` (what a policy file's list does) or run_sql's
`safe_functions`.

Names are matched without their schema; a built-in overloaded by a function of the same name
in another schema counts as that function, since the call may resolve to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from sqlglot.tokenizer_core import TokenType

from goex_tools.domains.sql.errors import InvalidSql
from goex_tools.domains.sql.postgres import lookup
from goex_tools.domains.sql.statements import SQLGLOT_DIALECTS, Statement, tokens_of

_declared: set[str] = set()

# Functions outside the catalogs called by name, or by the views the batch reads (through
# the views those read, and so on).
NOT_BUILT_IN = """
WITH RECURSIVE views(oid) AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relkind = 'v' AND c.relname = ANY (CAST(:tables AS text[]))
  UNION
    SELECT c.oid FROM views v
    JOIN pg_rewrite w ON w.ev_class = v.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
         AND d.refclassid = 'pg_class'::regclass
    JOIN pg_class c ON c.oid = d.refobjid AND c.relkind = 'v'
)
SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (p.proname = ANY (CAST(:called AS text[])) OR p.oid IN (
      SELECT d.refobjid FROM views v
      JOIN pg_rewrite w ON w.ev_class = v.oid
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
           AND d.refclassid = 'pg_proc'::regclass))
ORDER BY 1"""


def declare_safe_functions(*names: str) -> None:
    """Trust these functions (by name, in this process) to act only through the batch's own
    transaction: a batch calling them keeps its label (read, or reversible)."""
    _declared.update(_fold(n) for n in names)


def called(sql: str, dialect: str) -> list[str]:
    """Every name written just before a `(` in the batch: the functions it may call (and
    some words that are not functions, which no catalog lookup finds)."""
    try:
        tokens = tokens_of(sql, SQLGLOT_DIALECTS.get(dialect))
    except InvalidSql:
        return []
    names = []
    for token, after in pairwise(tokens):
        if after.token_type is TokenType.L_PAREN and token.token_type not in _NOT_NAMES:
            quoted = token.token_type is TokenType.IDENTIFIER
            names.append(token.text if quoted else token.text.lower())
    return sorted(set(names))


def unknown(url: str, sql: str, statements: list[Statement], safe: Iterable[str] = ()) -> list[str]:
    """The functions the batch may call (by name or through views) that are neither built in
    nor declared safe, in the PostgreSQL database at `url`."""
    tables = sorted({t.rpartition(".")[2] for s in statements for t in s.tables})
    names = called(sql, "postgresql")
    if not tables and not names:
        return []
    found = lookup(url, NOT_BUILT_IN, {"tables": tables, "called": names})
    trusted = _declared | {_fold(n) for n in safe}
    return [str(name) for (name,) in found if str(name) not in trusted]


def note(functions: list[str]) -> str:
    """Why a batch calling `functions` is of unknown effects."""
    shown = ", ".join(f"{name}()" for name in functions)
    return (
        f"irreversible (unknown effects): the batch calls {shown}, defined in this database "
        f"rather than built in; a function can write through a second connection (dblink, "
        f"postgres_fdw) that neither a read-only transaction nor row capture sees. Declare "
        f"it safe (run_sql(..., safe_functions=[...]) or declare_safe_functions) if it acts "
        f"only through the batch's own transaction"
    )


def _fold(name: str) -> str:
    """A name as PostgreSQL stores an unquoted identifier (a schema prefix dropped)."""
    bare = name.rpartition(".")[2]
    return bare[1:-1] if bare.startswith('"') and bare.endswith('"') else bare.lower()


_NOT_NAMES = frozenset(
    {
        TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA, TokenType.NUMBER,
        TokenType.STRING, TokenType.IN, TokenType.VALUES, TokenType.EXISTS,
    }
)  # fmt: skip
