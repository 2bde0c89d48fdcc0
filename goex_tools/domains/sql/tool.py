"""`run_sql`: one batch of SQL as one journaled, reversible (or declared irreversible) step.

    classify (sqlglot) -> Proposal (reversible how, or not) -> gate -> one transaction:
    run the statements while capturing row changes -> confirm? -> journal the undo -> COMMIT

A read-only batch runs in a read-only transaction that is never committed. A batch with DDL
or statements goex-tools cannot capture is declared irreversible before it runs, so policy
can refuse it. A batch a `confirm` callback declines is rolled back and journaled as failed:
its effect never reached the database (the spine's `discarded` is for held effects that
were kept for a while, which this never is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pydantic import BaseModel, Field
from sqlalchemy.engine import URL, Engine

from goex_tools.domains.sql import batch_text, functions, mysql, mysql_capture, postgres, sqlite
from goex_tools.domains.sql.changes import Captured, ChangeSummary, ConfirmAnswer, summarize
from goex_tools.domains.sql.databases import DatabaseRef, lookup, require_credentials
from goex_tools.domains.sql.errors import DeclinedByConfirm
from goex_tools.domains.sql.results import StatementResult
from goex_tools.domains.sql.statements import Statement, classify
from goex_tools.errors import InvalidArgument
from goex_tools.model import Compensation, JSONDict, Proposal, Reversibility
from goex_tools.runtime import StepHandle, execute

TOOL = "run_sql"
DOMAIN = "sql"
RESULT_ROWS = 100
Confirm = Callable[[ChangeSummary], ConfirmAnswer | bool]


class SqlResult(BaseModel):
    """What run_sql returns (and the model sees): the last result set, and what changed."""

    committed: bool
    reversible_by: str | None
    results: list[StatementResult] = Field(default_factory=list)
    changes: ChangeSummary | None = None
    message: str = ""


class Transaction(Protocol):
    def execute(self, sql: str, limit: int) -> StatementResult: ...
    def changes(self) -> Captured[Any]: ...
    def keyless_tables(self) -> list[str]: ...
    def compensation_args(self, ref: DatabaseRef) -> JSONDict: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class Plan(BaseModel):
    """How a batch will run, decided from its classification before anything runs."""

    ref: DatabaseRef
    statements: list[Statement]
    reversibility: Reversibility
    reversible_by: str | None = None
    kind: str | None = None  # the compensation kind
    notes: list[str] = Field(default_factory=list)
    unknown_functions: list[str] = Field(default_factory=list)  # effects nothing here sees

    @property
    def read_only(self) -> bool:
        return self.reversibility is Reversibility.NO_EFFECT


def plan(sql: str, database: str | URL | Engine, *, safe_functions: Iterable[str] = ()) -> Plan:
    """Classify a batch: is it read-only, reversible (by which mechanism), or irreversible?

    On PostgreSQL this looks the functions the batch calls up in the database: calling one
    that is not built in (nor in `safe_functions`) makes the batch of unknown effects.
    """
    real_url, ref = lookup(database)
    how = _classified(sql, ref)
    if how.kind is not None and ref.dialect == "mysql":
        why = mysql_capture.problem(real_url, how.statements)
        if why is not None:
            why = f"irreversible: its rows cannot be read back from the binary log: {why}"
            return _irreversible(ref, how.statements, why)
    if how.kind is not None:
        require_credentials(ref)
    if how.reversibility is not Reversibility.IRREVERSIBLE and ref.dialect == "postgresql":
        unknown = functions.unknown(real_url, sql, how.statements, safe_functions)
        if unknown:
            irreversible = _irreversible(ref, how.statements, functions.note(unknown))
            return irreversible.model_copy(update={"unknown_functions": unknown})
    return how


def _classified(sql: str, ref: DatabaseRef) -> Plan:
    """The plan the statements' syntax gives."""
    statements = classify(sql, ref.dialect)
    kinds = {s.kind for s in statements}
    if kinds == {"read"}:
        return Plan(ref=ref, statements=statements, reversibility=Reversibility.NO_EFFECT)
    if ref.dialect == "mysql":
        mysql.check_batch(statements)
    uncapturable = [s for s in statements if s.kind in ("ddl", "other")]
    if uncapturable:
        why = (
            f"irreversible: {uncapturable[0].kind} statement {uncapturable[0].sql[:60]!r} "
            f"changes the schema or the server in ways row capture cannot undo"
        )
        if ref.dialect == "mysql":
            why += "; " + mysql.DDL_NOTE
        return _irreversible(ref, statements, why)
    if ref.dialect == "sqlite":
        return _reversible(ref, statements, sqlite.MECHANISM, sqlite.KIND)
    if ref.dialect == "postgresql":
        return _reversible(ref, statements, postgres.MECHANISM, postgres.KIND)
    return _reversible(ref, statements, mysql_capture.MECHANISM, mysql_capture.KIND)


def propose(
    sql: str, database: str | URL | Engine, *, safe_functions: Iterable[str] = ()
) -> Proposal:
    """The Proposal run_sql will put to the gate: what the batch is and how it can be undone."""
    return _proposal(plan(sql, database, safe_functions=safe_functions), sql)


def run_sql(
    sql: str,
    database: str | URL | Engine,
    *,
    confirm: Confirm | None = None,
    result_rows: int = RESULT_ROWS,
    safe_functions: Iterable[str] = (),
    lock_timeout: float | None = postgres.LOCK_TIMEOUT,
) -> SqlResult:
    """Run a batch of SQL as one journaled step in one transaction.

    - `database`: a name given to `register_database`, a URL, or an SQLAlchemy Engine.
    - `confirm(summary)`: sees the changes before COMMIT and returns "commit" or "rollback"
      (or True/False).
    - `safe_functions`: PostgreSQL functions (by name) trusted to act only through the
      batch's own transaction; calling any other function that is not built in makes the
      batch of unknown effects (irreversible), see `functions`.
    - `lock_timeout`: PostgreSQL, seconds the batch (its row capture, its statements) may wait
      for a lock before it fails and is rolled back, and that a session the batch itself
      opened (dblink, postgres_fdw) may wait for the batch's locks before it is cancelled
      (see `postgres_lock_watch`); None waits for ever.

    Raises InvalidSql before anything runs for malformed SQL, and on MySQL/MariaDB for
    batches whose rollback would not take them back (see `mysql`).
    """
    how = plan(sql, database, safe_functions=safe_functions)
    if confirm is not None and how.ref.dialect == "mysql":
        mysql.check_confirm(how.statements)
    real_url, _ = lookup(database)

    def effect(handle: StepHandle) -> SqlResult:
        return _run(handle, how, real_url, confirm, result_rows, lock_timeout)

    try:
        return execute(_proposal(how, sql), effect)
    except DeclinedByConfirm as declined:
        return SqlResult(committed=False, reversible_by=how.reversible_by, message=str(declined))


def _run(
    handle: StepHandle,
    how: Plan,
    url: str,
    confirm: Confirm | None,
    limit: int,
    lock_timeout: float | None,
) -> SqlResult:
    tx = _open(how, url, lock_timeout)
    try:
        if isinstance(tx, mysql_capture.MysqlTransaction):  # its XA id outlives a crash
            handle.set_compensation(_compensation(how, tx.pending_args(how.ref)))
            handle.save("XA transaction started")
        # MySQL without the binary log: affected-row counts, not captured rows
        counted = how.ref.dialect == "mysql" and how.kind is None
        if isinstance(tx, postgres.SqlAlchemyTransaction) and counted:
            _check_mysql(handle, tx, how, confirming=confirm is not None)
        results = [tx.execute(s.sql, limit) for s in how.statements]
        if counted:
            summary = mysql.summarize(how.ref.url, how.statements, results)
        else:
            summary = summarize(how.ref.url, how.statements, how.reversible_by, tx.changes())
        if how.read_only:
            tx.rollback()
            return SqlResult(committed=False, reversible_by=None, results=results)
        if how.kind is not None or counted:
            handle.effect.update(summary.effect())
        if how.kind is not None:
            handle.notes.extend(_keyless_note(tx.keyless_tables()))
        if confirm is not None and not _confirmed(confirm(summary)):
            tx.rollback()
            handle.set_compensation(None)
            raise DeclinedByConfirm("the confirm callback rolled the batch back; nothing changed")
        handle.charge()  # the rows are taken from the run's budgets before COMMIT
        if how.kind is not None:
            handle.set_compensation(_compensation(how, tx.compensation_args(how.ref)))
            handle.save("row changes captured; committing")
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    finally:
        tx.close()
    return SqlResult(
        committed=True,
        reversible_by=how.reversible_by,
        results=results,
        changes=summary if how.kind is not None or counted else None,
    )


def _check_mysql(
    handle: StepHandle, tx: postgres.SqlAlchemyTransaction, how: Plan, *, confirming: bool
) -> None:
    """Tables without transactions, and rows the affected-row counts leave out: no confirm
    (its rollback, or the counts it decides on, would lie), and a step note."""
    if how.read_only:
        return
    tables = mysql.non_transactional(tx.conn, how.statements)
    reasons = mysql.uncounted(tx.conn, how.statements)
    if confirming:
        mysql.refuse_confirm_without_rollback(tables)
        mysql.refuse_confirm_uncounted(reasons)
    if tables:
        handle.notes.append(mysql.partial_failure_note(tables))
    if reasons:
        handle.notes.append(mysql.uncounted_note(reasons))


def _keyless_note(tables: list[str]) -> list[str]:
    """The step record says how rows of tables without a primary key are found again."""
    if not tables:
        return []
    return [
        f"no primary key on {', '.join(tables)}: its rows are restored by whole-row match "
        f"(identical rows are interchangeable)"
    ]


def _open(how: Plan, url: str, lock_timeout: float | None) -> Transaction:
    capture = how.kind is not None
    if how.ref.dialect == "sqlite":
        return sqlite.SqliteTransaction(url, capture=capture, read_only=how.read_only)
    if how.ref.dialect == "mysql" and capture:
        return mysql_capture.MysqlTransaction(url, lock_timeout=lock_timeout)
    return postgres.SqlAlchemyTransaction(
        url, capture=capture, read_only=how.read_only, lock_timeout=lock_timeout
    )


def _confirmed(answer: ConfirmAnswer | bool) -> bool:
    if isinstance(answer, bool):
        return answer
    if answer not in ("commit", "rollback"):
        raise InvalidArgument(f"a confirm callback answers 'commit' or 'rollback', not {answer!r}")
    return answer == "commit"


def _proposal(how: Plan, sql: str) -> Proposal:
    database = how.ref.url if how.ref.name is None else f"{how.ref.name} ({how.ref.url})"
    return Proposal(
        tool=TOOL,
        domain=DOMAIN,
        inputs=batch_text.inputs(sql, database),
        reversibility=how.reversibility,
        compensation=_compensation(how, {"database": how.ref.model_dump()}) if how.kind else None,
        predicted={
            "database": how.ref.url,
            "dialect": how.ref.dialect,
            "statements": batch_text.statements(sql, how.statements),
            "reversible_by": how.reversible_by,
            "unknown_functions": how.unknown_functions,
        },
        notes=how.notes,
    )


def _compensation(how: Plan, args: JSONDict) -> Compensation:
    assert how.kind is not None
    tables = sorted({t for s in how.statements for t in s.tables})
    return Compensation(
        kind=how.kind,
        args=args,
        description=f"restore the rows the batch changed ({how.reversible_by}; names "
        f"{', '.join(tables) or 'no table'})",
    )


def _reversible(ref: DatabaseRef, statements: list[Statement], mechanism: str, kind: str) -> Plan:
    note = (
        f"reversible by {mechanism}: every row the transaction changes is recorded, in every "
        f"table (ON DELETE cascades, rows written by triggers, generated keys included); "
        f"effects outside the database (a trigger's NOTIFY or external call) are not"
    )
    if ref.dialect == "postgresql":
        note += "; sequence numbers taken are not given back (sequences are not transactional)"
    if ref.dialect == "mysql":
        note = (
            f"reversible by {mechanism}: the batch runs as an XA transaction, and every row it "
            f"changes (rows written by triggers and stored functions included) is read back "
            f"from the server's binary log after XA PREPARE, before it commits; the undo "
            f"replays those rows inverted, firing no trigger. Rows changed by a foreign key's "
            f"ON DELETE/UPDATE action are not in the binary log: a batch setting one off is "
            f"rolled back. AUTO_INCREMENT counters are not given back"
        )
    return Plan(
        ref=ref,
        statements=statements,
        reversibility=Reversibility.REVERSIBLE,
        reversible_by=mechanism,
        kind=kind,
        notes=[note],
    )


def _irreversible(ref: DatabaseRef, statements: list[Statement], why: str) -> Plan:
    return Plan(
        ref=ref, statements=statements, reversibility=Reversibility.IRREVERSIBLE, notes=[why]
    )
