"""Compensation kinds for undos an LLM proposed and a test-bed verified.

    llm.sql    run the verified undo statements on the step's database, in one transaction
    llm.shell  run the verified undo command in the step's workspace, in a sandbox

The arguments record where the undo came from (`compensation_source: "llm"`), the model, and
the test-bed that verified it, so the journal says why this undo was trusted. They are data,
so `goex rollback` in any process can run them (the `llm.` prefix loads this module).
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from goex_tools.model import JSONDict
from goex_tools.registry import UndoContext, registry

SQL_KIND = "llm.sql"
SHELL_KIND = "llm.shell"


class Provenance(BaseModel):
    compensation_source: Literal["llm"] = "llm"
    model: str
    verified_in: str  # the test-bed that showed action + undo restores the state


class SqlUndoArgs(Provenance):
    database: str  # URL with the password hidden
    database_name: str | None = None  # a registered name, to find credentials again
    statements: list[str]


class ShellUndoArgs(Provenance):
    workspace: str
    command: str
    sandbox: str


@registry.register(SQL_KIND, args_model=SqlUndoArgs)
def _undo_sql(args: JSONDict, ctx: UndoContext) -> None:
    from goex_tools.domains.sql.databases import DatabaseRef, resolve

    parsed = SqlUndoArgs.model_validate(args)
    url = resolve(DatabaseRef(name=parsed.database_name, url=parsed.database))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in parsed.statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@registry.register(SHELL_KIND, args_model=ShellUndoArgs)
def _undo_shell(args: JSONDict, ctx: UndoContext) -> Any:
    from goex_tools.policy.shell import run_in_workspace

    parsed = ShellUndoArgs.model_validate(args)
    return run_in_workspace(parsed.command, parsed.workspace, parsed.sandbox)
