"""Trying a batch before it runs: what it would change, as the undo capture sees it.

The batch runs with row capture in a transaction that is always rolled back, on the real
database (SQLite and PostgreSQL roll back everything a transaction did, DDL included). The
summary counts every row it changed in every table: rows written by triggers (an INSTEAD OF
trigger under a view, a trigger on another table), ON DELETE cascades. A policy decides on
those tables and that count, not on the tables the statements name.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, Engine

from goex_tools.domains.sql import mysql_capture, postgres, sqlite
from goex_tools.domains.sql.changes import ChangeSummary, summarize
from goex_tools.domains.sql.databases import lookup
from goex_tools.domains.sql.tool import Transaction, plan


def trial(sql: str, database: str | URL | Engine) -> ChangeSummary | None:
    """Every row the batch would change, per table; None when its changes cannot be seen
    (a read, MySQL without a row-based binary log, DDL, a function of unknown effects: see
    `plan`). Errors of the batch are raised as they would be when it runs."""
    how = plan(sql, database)
    if how.kind is None or how.read_only:
        return None
    url, _ = lookup(database)
    tx: Transaction
    if how.ref.dialect == "sqlite":
        tx = sqlite.SqliteTransaction(url, capture=True)
    elif how.ref.dialect == "mysql":  # XA PREPARE writes its rows to the binary log
        tx = mysql_capture.MysqlTransaction(url)
    else:
        tx = postgres.SqlAlchemyTransaction(url, capture=True, read_only=False)
    try:
        for statement in how.statements:
            tx.execute(statement.sql, 0)
        return summarize(how.ref.url, how.statements, how.reversible_by, tx.changes(), sample=0)
    finally:
        tx.rollback()
        tx.close()
