"""Errors of the SQL domain, all under `SqlError`; each says whether the batch ran.

* SqlError: the domain's base; raised itself when a batch or its undo cannot be run safely
  (no credentials to undo it with, a lock wait past its limit, rows the capture did not see,
  a row changed since that a forced undo cannot overwrite, ...)
  + InvalidSql: SQL that cannot be parsed, or that run_sql must not run (transaction control)
  + DeclinedByConfirm: the confirm callback rolled the batch back; nothing reached the database
"""

from __future__ import annotations

from goex_tools.errors import GoexError

__all__ = ["DeclinedByConfirm", "InvalidSql", "SqlError"]


class SqlError(GoexError):
    """Base of the SQL domain's errors; raised itself for a batch or undo that cannot run
    safely. The message says whether anything was run."""


class InvalidSql(SqlError):
    """SQL that cannot be parsed, or that run_sql must not run (transaction control)."""


class DeclinedByConfirm(SqlError):
    """The confirm callback chose to roll the batch back; nothing reached the database."""
