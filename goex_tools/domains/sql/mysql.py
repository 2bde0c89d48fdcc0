"""MySQL/MariaDB: where ROLLBACK takes a batch back, and where it would only pretend to.

On a server with a row-based binary log, writes are captured from it (`mysql_capture`). Here
is the rest: a server without one. Triggers are schema objects (creating one commits at once),
so PostgreSQL's triggers that live only inside the step's transaction do not exist, and a
before-image SELECT would miss cascades and trigger writes. Data changes are therefore declared
irreversible; before COMMIT a confirm callback can still roll them back, but only where ROLLBACK
works. DDL (and any statement goex-tools does not classify as a read or write) commits
implicitly, together with everything before it; tables whose engine has no transactions
(MyISAM, Aria, MEMORY, ...) keep their rows whatever ROLLBACK says. Batches where a rollback
would be a lie are refused before anything runs, so the journal never calls such a batch
"failed, nothing changed" when it did change something.

What a confirm callback (and the step's effect) sees are the server's affected-row counts per
statement, attributed to the one table each write names. Rows changed by ON DELETE/UPDATE
actions, triggers or stored functions are not in those counts, and a multi-table write's
count cannot be split per table: a confirm callback over such a batch would see too few rows,
so it is refused before anything runs (without confirm the step's notes say so).
"""

from __future__ import annotations

import re

import sqlglot
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from goex_tools.domains.sql.changes import ChangeSummary, TableChanges
from goex_tools.domains.sql.errors import InvalidSql, SqlError
from goex_tools.domains.sql.functions import called
from goex_tools.domains.sql.results import StatementResult
from goex_tools.domains.sql.statements import Statement

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
        raise SqlError(
            f"{', '.join(tables)}: this engine has no transactions, so a confirm callback "
            f"could not roll the batch back; nothing was run (run it without confirm, or move "
            f"the table to InnoDB)"
        )


def partial_failure_note(tables: list[str]) -> str:
    return (
        f"{', '.join(tables)}: this engine has no transactions, so if the batch fails half-way "
        f"the rows written so far stay"
    )


ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT")
COUNT = {exp.Insert: "inserted", exp.Update: "updated", exp.Delete: "deleted"}


INSERT_INTO = re.compile(
    r"\s*INSERT\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?"
    r"((?:`[^`]+`|\w+)(?:\.(?:`[^`]+`|\w+))?)[\s(]",
    re.IGNORECASE,
)


def target(statement: Statement) -> tuple[str, str] | None:
    """(table, "inserted"/"updated"/"deleted") of a write that changes one table only; None
    for a multi-table write (or one sqlglot does not read). An INSERT is read without sqlglot
    (a 20,000-row VALUES list takes it seconds)."""
    plain = INSERT_INTO.match(statement.sql)
    if plain is not None and "ON DUPLICATE KEY" not in statement.sql[-4096:].upper():
        return plain.group(1).replace("`", ""), "inserted"
    try:
        tree = sqlglot.parse_one(statement.sql, read="mysql")
    except (ParseError, TokenError):
        return None
    counted = next((name for kind, name in COUNT.items() if isinstance(tree, kind)), None)
    if counted is None:
        return None
    if isinstance(tree, exp.Delete) and tree.args.get("tables"):  # DELETE t1[, t2] FROM ...
        named = tree.args["tables"]
        return (_table_name(named[0]), counted) if len(named) == 1 else None
    table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if not isinstance(table, exp.Table) or table.args.get("joins"):  # UPDATE a JOIN b ...
        return None
    return _table_name(table), counted


def uncounted(conn: Connection, statements: list[Statement]) -> list[str]:
    """Why affected-row counts would leave rows of this batch out (empty when they do not)."""
    writes = [s for s in statements if s.kind == "write"]
    found = [f"{s.sql[:60]!r} changes several tables" for s in writes if target(s) is None]
    targets = [t for s in writes if (t := target(s)) is not None]
    names = sorted({table.rpartition(".")[2] for table, _ in targets})
    changed = sorted({table.rpartition(".")[2] for table, op in targets if op != "inserted"})
    if names:
        found += [
            f"trigger {name} on {table}"
            for name, table in _rows(
                conn,
                "SELECT trigger_name, event_object_table FROM information_schema.triggers "
                "WHERE event_object_schema = DATABASE() AND event_object_table IN :names",
                names,
            )
        ]
    if changed:
        found += [
            f"{child} rows follow {parent} rows (ON DELETE {on_delete}, ON UPDATE {on_update})"
            for child, parent, on_delete, on_update in _rows(
                conn,
                "SELECT table_name, referenced_table_name, delete_rule, update_rule "
                "FROM information_schema.referential_constraints "
                "WHERE unique_constraint_schema = DATABASE() AND referenced_table_name IN :names "
                f"AND (delete_rule IN {ACTIONS} OR update_rule IN {ACTIONS})",
                changed,
            )
        ]
    routines = sorted({n for s in writes for n in called(s.sql, "mysql")})
    if routines:
        found += [
            f"stored function {name}()"
            for (name,) in _rows(
                conn,
                "SELECT DISTINCT routine_name FROM information_schema.routines "
                "WHERE routine_name IN :names",
                routines,
            )
        ]
    return found


def refuse_confirm_uncounted(reasons: list[str]) -> None:
    """A confirm callback must not approve a batch on counts that leave rows out."""
    if reasons:
        raise SqlError(
            f"a confirm callback would see only the affected-row counts of each statement, "
            f"which leave out rows changed here by {'; '.join(reasons)}; nothing was run "
            f"(run it without confirm, where policy sees it as irreversible)"
        )


def uncounted_note(reasons: list[str]) -> str:
    return f"the rows changed are affected-row counts, which leave out: {'; '.join(reasons)}"


def summarize(
    database: str, statements: list[Statement], results: list[StatementResult]
) -> ChangeSummary:
    """The changes of a batch as its statements' affected-row counts (no row images)."""
    tables: dict[str, TableChanges] = {}
    total = 0
    for statement, result in zip(statements, results, strict=True):
        if statement.kind != "write":
            continue
        count = max(result.row_count or 0, 0)
        total += count
        found = target(statement)
        if found is not None:
            table = tables.setdefault(found[0], TableChanges())
            setattr(table, found[1], getattr(table, found[1]) + count)
            table.truncated = True  # no rows are shown
    return ChangeSummary(
        database=database,
        statements=statements,
        reversible_by=None,
        rows_changed=total,
        tables=tables,
    )


def _table_name(table: exp.Table) -> str:
    return f"{table.db}.{table.name}" if table.db else table.name


def _rows(conn: Connection, sql: str, names: list[str]) -> list[tuple[str, ...]]:
    query = text(sql).bindparams(bindparam("names", expanding=True))
    return [tuple(str(v) for v in row) for row in conn.execute(query, {"names": names})]
