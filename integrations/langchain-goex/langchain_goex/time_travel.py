"""Time travel that takes the world along: `rewind(graph, config)` and `fork(graph, ...)`.

LangGraph's checkpointer lets a person go back to an earlier checkpoint of a thread
(`graph.get_state_history(config)`) and resume from there, or fork it with `update_state`:
the agent's memory goes back, but what its tools changed stays changed. `rewind` undoes,
newest first, every effect of the thread's tool calls made after the checkpoint, across all
the thread's runs (`goex_tools.threads`), and returns where to resume; `fork` rewinds, then
applies `update_state` there. Tool calls are known to goex when the graph ran with a
`GoexCallbackHandler` (any graph with a checkpointer: `create_agent`, LangGraph's prebuilt
agent, a hand-built `StateGraph`, subgraphs).

    report = rewind(agent, old_snapshot.config)      # the world as it was at that checkpoint
    agent.invoke(None, report.config)                # replay from there
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from typing_extensions import Unpack

from goex_tools.errors import InvalidArgument, NotFound
from goex_tools.journal import Journal, get_journal
from goex_tools.rollback import OnIrreversible, RetryPolicy
from goex_tools.threads import Checkpoint, RewindOptions, RewindReport, place_of
from goex_tools.threads import rewind as rewind_thread

__all__ = ["fork", "rewind"]

COPY = "__copy__"  # update_state's `as_node` that copies a checkpoint (a fork, no writes)


def rewind(
    graph: Any,
    config: RunnableConfig,
    *,
    journal: Journal | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_irreversible: OnIrreversible = "stop",
    retry: RetryPolicy | None = None,
    live: bool = False,
) -> RewindReport:
    """Bring the world back to a checkpoint of a thread; return where to resume from.

    - `graph`: the compiled graph (with its checkpointer) the thread ran on.
    - `config`: the checkpoint: `{"configurable": {"thread_id": ..., "checkpoint_id": ...}}`
      (a `StateSnapshot.config` from `get_state_history`); without a `checkpoint_id`, the
      thread's latest checkpoint.
    - `journal`: the journal the `GoexCallbackHandler` wrote to.
    - `dry_run`, `force`, `on_irreversible`, `retry`, `live`: as in `goex.rollback`.

    Every step to undo is checked first: a step with no undo, one left pending or one whose
    undo would meet a conflict stops the rewind before anything is undone.

    Returns the report; `report.config` is the config to resume from (`graph.invoke(None,
    report.config)` replays from the checkpoint; `Command(resume=...)` answers its interrupt).
    When the checkpoint holds the results of calls whose effects were undone (a step of
    parallel calls interrupted half-way), `report.config` is a copy of it without them, so
    that resuming runs those calls again (`report.notes` says so).

    Raises: RollbackFailed (with the report) when the checks or an undo stop it;
    InvalidArgument for a graph without a checkpointer or a config without a thread;
    NotFound for a checkpoint the checkpointer does not hold.
    """
    store = get_journal(journal)
    snapshot = _snapshot(graph, config)
    point = _checkpoint(graph, snapshot)
    report = rewind_thread(
        point,
        journal=store,
        dry_run=dry_run,
        force=force,
        on_irreversible=on_irreversible,
        retry=retry,
        live=live,
    )
    rerun = _finished_tasks_undone(snapshot, point, report, store)
    if rerun:
        report.notes.append(
            f"checkpoint {point.checkpoint_id} holds the results of {rerun} finished task(s) "
            f"whose effects were undone; resuming from a copy of it runs them again"
        )
        if not dry_run:
            report.config = dict(graph.update_state(snapshot.config, None, as_node=COPY))
    return report


def fork(
    graph: Any,
    config: RunnableConfig,
    values: dict[str, Any] | Any | None,
    *,
    as_node: str | None = None,
    **options: Unpack[RewindOptions],
) -> RewindReport:
    """`graph.update_state(config, values, as_node)` on a checkpoint, with the world brought
    back to that checkpoint first (`rewind`, with the same keywords). `report.config` is the
    fork to continue from (`graph.invoke(None, report.config)`). With `dry_run` nothing is
    undone or forked.

    Raises: as `rewind`; nothing is forked unless the world was rewound.
    """
    report = rewind(graph, config, **options)
    if not options.get("dry_run"):
        report.config = dict(graph.update_state(report.config, values, as_node=as_node))
    return report


def _snapshot(graph: Any, config: RunnableConfig) -> Any:
    configurable = config.get("configurable") or {}
    if configurable.get("thread_id") is None:
        raise InvalidArgument("the config names no thread: give configurable.thread_id")
    if getattr(graph, "checkpointer", None) is None:
        raise InvalidArgument(
            f"{type(graph).__name__} has no checkpointer: compile it with one to travel in "
            f"time (nothing was undone)"
        )
    snapshot = graph.get_state(config)
    if snapshot.created_at is None:
        wanted = configurable.get("checkpoint_id") or "any checkpoint"
        raise NotFound(f"thread {configurable['thread_id']!r} has no {wanted} in the checkpointer")
    return snapshot


def _checkpoint(graph: Any, snapshot: Any) -> Checkpoint:
    """The checkpoint, with every root checkpoint of its thread this graph's checkpointer
    holds: calls that ran after others are another graph's (one using the same thread id)."""
    configurable = snapshot.config["configurable"]
    thread_id = str(configurable["thread_id"])
    history = graph.get_state_history({"configurable": {"thread_id": thread_id}})
    return Checkpoint(
        thread_id=thread_id,
        checkpoint_id=str(configurable["checkpoint_id"]),
        checkpoint_ns=str(configurable.get("checkpoint_ns") or ""),
        created_at=snapshot.created_at,
        known=frozenset(str(s.config["configurable"]["checkpoint_id"]) for s in history),
    )


def _finished_tasks_undone(
    snapshot: Any, point: Checkpoint, report: RewindReport, journal: Journal
) -> int:
    """How many tasks finished after the checkpoint (their results stored with it) made
    calls whose effects this rewind undoes: LangGraph hands such results back on resume
    instead of running the task again."""
    finished = {task.id for task in snapshot.tasks if task.result is not None}
    if not finished:
        return 0
    tasks = set()
    for call_id in report.calls:
        place = place_of(journal.get_step(call_id))
        if place is not None and place.checkpoints.get(point.checkpoint_ns) == point.checkpoint_id:
            tasks.add(place.task_at(point.checkpoint_ns))
    return len(tasks & finished)
