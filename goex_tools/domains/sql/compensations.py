"""The sql domain's compensation kinds, registered with the shared registry."""

from __future__ import annotations

from goex_tools.domains.sql import postgres, postgres_undo, sqlite
from goex_tools.model import JSONDict, Step
from goex_tools.registry import EffectState, UndoContext, registry


def _args(step: Step) -> JSONDict:
    assert step.compensation is not None
    return step.compensation.args


def _probe_sqlite(step: Step) -> EffectState:
    return sqlite.probe(_args(step))


def _probe_postgres(step: Step) -> EffectState:
    return postgres_undo.probe(_args(step))


@registry.register(sqlite.KIND, args_model=sqlite.ChangesetArgs, probe=_probe_sqlite)
def _undo_sqlite(args: JSONDict, ctx: UndoContext) -> None:
    sqlite.restore(args, ctx.force)


@registry.register(postgres.KIND, args_model=postgres.RestoreRowsArgs, probe=_probe_postgres)
def _undo_postgres(args: JSONDict, ctx: UndoContext) -> None:
    postgres_undo.restore(args, ctx.force, ctx)
