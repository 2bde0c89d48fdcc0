"""Going back in a LlamaIndex workflow with the world: `mark(thread_id, name)` when its
`Context` is saved, `rewind(thread_id, name)` before resuming from that saved `Context`.

A workflow that waits for a person is saved (`ctx.to_dict()`) and resumed later, maybe in
another process (`Context.from_dict(workflow, data)`): each resumed run is a run of its own.
Run them under one thread id (`with instrument_tags({"thread_id": ...})`) and name the
moment the `Context` is saved; resuming from an older saved `Context` then starts, after
`rewind`, on the world as it was when it was saved: every effect of the thread's tool calls
made since is undone, newest first, across all the thread's runs (`goex_tools.threads`).

    data = handler.ctx.to_dict(); mark(thread_id, "asked for approval")
    ...
    rewind(thread_id, "asked for approval")
    workflow.run(ctx=Context.from_dict(workflow, data))
"""

from __future__ import annotations

from typing_extensions import Unpack

from goex_tools.journal import Journal, get_journal
from goex_tools.threads import Checkpoint, RewindOptions, RewindReport, named_point
from goex_tools.threads import mark as mark_point
from goex_tools.threads import rewind as rewind_thread

__all__ = ["mark", "rewind"]


def mark(thread_id: str, name: str, *, journal: Journal | str | None = None) -> Checkpoint:
    """Name this moment of the thread (call it when the workflow's `Context` is saved)."""
    return mark_point(thread_id, name, journal=journal)


def rewind(thread_id: str, name: str, **options: Unpack[RewindOptions]) -> RewindReport:
    """Bring the world back to the point of the thread named `name` (its latest `mark`).

    - `journal`, `dry_run`, `force`, `on_irreversible`, `retry`, `live`: as in
      `goex.rollback`.

    Every step to undo is checked first: a step with no undo, one left pending or one whose
    undo would meet a conflict stops it before anything is undone.

    Raises: RollbackFailed (with the report) when the checks or an undo stop it; NotFound
    for a thread without a point of that name.
    """
    store = get_journal(options.pop("journal", None))
    return rewind_thread(named_point(thread_id, name, journal=store), journal=store, **options)
