"""Database actions: `run_sql` over SQLite, PostgreSQL and MySQL/MariaDB, undoable after commit.

    from goex_tools.domains.sql import run_sql, register_database
    register_database("shop", "postgresql+psycopg://app:secret@db/shop")
    with goex.run("agent"):
        run_sql("DELETE FROM orders WHERE status = 'stale'", "shop")
    goex.rollback(run_id)      # restores every row the DELETE removed, cascades included

SQLite is captured by the session extension (apsw), PostgreSQL by row triggers that live only
in the step's transaction, MySQL/MariaDB by reading the batch's rows back from the server's
row-based binary log after XA PREPARE (`mysql_capture`, undone by `mysql_undo`); without such
a binary log, data changes there are irreversible, and batches a ROLLBACK would not take back
are refused (see `mysql`). DDL is irreversible everywhere. An undo never leaves a broken
foreign key.
"""

from goex_tools.domains.sql import compensations as _compensations  # registers the kinds
from goex_tools.domains.sql.changes import ChangeSummary, ConfirmAnswer, RowChange, TableChanges
from goex_tools.domains.sql.databases import DatabaseRef, register_database
from goex_tools.domains.sql.errors import DeclinedByConfirm, InvalidSql, SqlError
from goex_tools.domains.sql.functions import declare_safe_functions
from goex_tools.domains.sql.results import StatementResult
from goex_tools.domains.sql.statements import Statement, classify
from goex_tools.domains.sql.tool import (
    Confirm,
    Plan,
    SqlResult,
    plan,
    propose,
    run_sql,
)

del _compensations

__all__ = [
    "ChangeSummary",
    "Confirm",
    "ConfirmAnswer",
    "DatabaseRef",
    "DeclinedByConfirm",
    "InvalidSql",
    "Plan",
    "RowChange",
    "SqlError",
    "SqlResult",
    "Statement",
    "StatementResult",
    "TableChanges",
    "classify",
    "declare_safe_functions",
    "plan",
    "propose",
    "register_database",
    "run_sql",
]
