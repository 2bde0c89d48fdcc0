"""The sql domain's compensation kinds, registered with the shared registry."""

from __future__ import annotations

import json
from collections.abc import Callable

from goex_tools.domains.sql import mysql_capture, mysql_undo, postgres, postgres_undo, sqlite
from goex_tools.domains.sql.changes import conflict_report
from goex_tools.model import JSONDict, Step
from goex_tools.registry import EffectState, UndoContext, registry


def _args(step: Step) -> JSONDict:
    assert step.compensation is not None
    return step.compensation.args


def _probe_sqlite(step: Step) -> EffectState:
    return sqlite.probe(_args(step))


def _probe_postgres(step: Step) -> EffectState:
    return postgres_undo.probe(_args(step))


def _preview_sqlite(steps: list[Step]) -> dict[str, str]:
    """The conflicts undoing `steps` (newest first) would meet, tried per database in one
    transaction always rolled back (`sqlite.preview`)."""
    return _per_database(steps, sqlite.preview)


def _per_database(
    steps: list[Step], trial: Callable[[list[JSONDict]], list[list[str]]]
) -> dict[str, str]:
    chains: dict[str, list[Step]] = {}
    for step in steps:
        where = json.dumps(_args(step).get("database"), sort_keys=True)
        chains.setdefault(where, []).append(step)
    found: dict[str, str] = {}
    for chain in chains.values():
        for step, conflicts in zip(chain, trial([_args(s) for s in chain]), strict=False):
            if conflicts:
                found[step.id] = conflict_report(conflicts)
    return found


@registry.register(
    sqlite.KIND, args_model=sqlite.ChangesetArgs, probe=_probe_sqlite, preview=_preview_sqlite
)
def _undo_sqlite(args: JSONDict, ctx: UndoContext) -> None:
    sqlite.restore(args, ctx.force)


def _preview_postgres(steps: list[Step]) -> dict[str, str]:
    """As `_preview_sqlite`, with the PostgreSQL row log's undo (`postgres_undo.preview`)."""
    return _per_database(steps, postgres_undo.preview)


@registry.register(
    postgres.KIND,
    args_model=postgres.RestoreRowsArgs,
    probe=_probe_postgres,
    preview=_preview_postgres,
)
def _undo_postgres(args: JSONDict, ctx: UndoContext) -> None:
    postgres_undo.restore(args, ctx.force, ctx)


def _probe_mysql(step: Step) -> EffectState:
    return mysql_capture.probe(_args(step))


def _preview_mysql(steps: list[Step]) -> dict[str, str]:
    """As `_preview_sqlite`, with the MySQL/MariaDB binary-log undo (`mysql_undo.preview`)."""
    return _per_database(steps, mysql_undo.preview)


@registry.register(
    mysql_capture.KIND,
    args_model=mysql_capture.BinlogRowsArgs,
    probe=_probe_mysql,
    preview=_preview_mysql,
)
def _undo_mysql(args: JSONDict, ctx: UndoContext) -> None:
    mysql_undo.restore(args, ctx.force, ctx)
