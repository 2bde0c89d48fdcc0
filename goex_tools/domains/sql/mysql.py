"""MySQL/MariaDB: where ROLLBACK takes a batch back, and where it would only pretend to.

There is no row capture here. Triggers are schema objects (creating one commits at once), so
PostgreSQL's triggers that live only inside the step's transaction do not exist, and a
before-image SELECT would miss cascades and trigger writes. Data changes are therefore declared
irreversible; before COMMIT a confirm callback can still roll them back, but only where ROLLBACK
works. DDL (and any statement goex-tools does not classify as a read or write) commits
implicitly, together with everything before it; tables whose engine has no transactions
(MyISAM, Aria, MEMORY, ...) keep their rows whatever ROLLBACK says. Batches where a rollback
would be a lie are refused before anything runs, so the journal never calls such a batch
"failed, nothing changed" when it did change something.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from goex_tools.domains.sql.statements import InvalidSql, Statement
from goex_tools.errors import GoexError

TRANSACTIONAL_ENGINES = frozenset({"innodb", "rocksdb", "tokudb"})
DDL_NOTE = (
    "MySQL/MariaDB commit DDL at once, so a confirm callback cannot undo it, and a DDL "
    "statement that fails may have taken effect in part (MariaDB's DROP TABLE a, b drops a "
    "when b is missing)"
)


def implicit_commits(statements: list[Statement]) -> list[Statement]:
    """The statements MySQL/MariaDB may commit implicitly (DDL and anything not read/write)."""
    return [s for s in statements if s.kind in ("ddl", "other")]


def check_batch(statements: list[Statement]) -> None:
    """A statement that commits implicitly must run alone: it would commit the rest with it."""
    implicit = implicit_commits(statements)
    if implicit and len(statements) > 1:
        raise InvalidSql(
            f"{implicit[0].sql[:60]!r} commits implicitly on MySQL/MariaDB, and with it every "
            f"statement before it in the batch; run it in a run_sql call of its own"
        )


def check_confirm(statements: list[Statement]) -> None:
    """A confirm callback's "rollback" cannot take back a statement that commits implicitly."""
    implicit = implicit_commits(statements)
    if implicit:
        raise InvalidSql(
            f"{implicit[0].sql[:60]!r} commits implicitly on MySQL/MariaDB, so a confirm "
            f"callback could not roll it back; run it without confirm (policy sees it as "
            f"irreversible)"
        )


def non_transactional(conn: Connection, statements: list[Statement]) -> list[str]:
    """The tables the batch names whose engine ignores ROLLBACK."""
    names = sorted({t for s in statements for t in s.tables})
    found = []
    for name in names:
        schema, _, table = name.rpartition(".")
        engine = conn.execute(
            text(
                "SELECT engine FROM information_schema.tables WHERE table_name = :table "
                "AND table_schema = COALESCE(NULLIF(:schema, ''), DATABASE())"
            ),
            {"table": table, "schema": schema},
        ).scalar()
        if engine is not None and str(engine).lower() not in TRANSACTIONAL_ENGINES:
            found.append(f"{name} ({engine})")
    return found


def refuse_confirm_without_rollback(tables: list[str]) -> None:
    """A confirm callback must not be offered a rollback that keeps the rows anyway."""
    if tables:
        raise GoexError(
            f"{', '.join(tables)}: this engine has no transactions, so a confirm callback "
            f"could not roll the batch back; nothing was run (run it without confirm, or move "
            f"the table to InnoDB)"
        )


def partial_failure_note(tables: list[str]) -> str:
    return (
        f"{', '.join(tables)}: this engine has no transactions, so if the batch fails half-way "
        f"the rows written so far stay"
    )
