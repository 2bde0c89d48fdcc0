"""LangGraph time travel with the world: an agent (create_agent, a real checkpointer) edits
files, rows and a REST resource over two user turns, pausing before every tool step and once
inside a tool for a person's approval. Rewinding to each earlier checkpoint in turn brings
the agent's state and the world (every file entry, every table row, the service) back to
what they were there, and a replay from there reaches the first run's end state again."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import BaseMessage
from langchain_core.tools import tool
from langchain_goex import GoexCallbackHandler, GoexToolkit, fork, goex_tool, rewind
from langchain_goex.chat_models import ScriptedChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command, interrupt

from goex_tools import RollbackFailed, RunStatus, StepStatus
from goex_tools.threads import (
    Checkpoint,
    made_after,
    place_of,
    thread_checkpoints,
    thread_steps,
)
from tests.integrations import actions
from tests.integrations.actions import slow_write, write_text

USER_TURNS = ["open the spring sale", "now the catalog and the old orders"]


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """LangGraph's in-memory checkpointer, or its SQLite one (a file, as a service keeps it)."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    yield SqliteSaver(conn)
    conn.close()


def script(world: Any) -> list[Any]:
    """The model's turns: AI message n of the conversation answers with turn n."""
    base = world.service.url
    return [
        [("write_file", {"path": "notes/sale.md", "content": "# Spring sale\n-20%\n"})],
        [("run_sql", {"sql": "UPDATE customers SET tier = 'gold' WHERE id = 2"})],
        "The sale is open.",
        [
            ("http_request", {"method": "POST", "url": f"{base}/items",
                              "body": {"name": "gift card", "price": 25}}),
            ("edit_file", {"path": "config.toml", "old": "debug = true", "new": "debug = false"}),
        ],
        [
            ("delete_item", {"item_id": 1}),  # asks a person first (an interrupt in the tool)
            ("run_sql", {"sql": "DELETE FROM orders WHERE status = 'cancelled'"}),
        ],
        "The catalog and the orders are done.",
    ]  # fmt: skip


def agent_for(
    world: Any, saver: Any, turns: list[Any] | None = None, extra: list[Any] = ()
) -> Any:
    def delete_item(item_id: int) -> Any:
        """Delete an item of the catalog, once a person approves."""
        if interrupt({"delete item": item_id}) != "yes":
            return "declined"
        return world.http.request("DELETE", f"{world.service.url}/items/{item_id}").model_dump(
            mode="json"
        )

    tools = GoexToolkit(
        workspace=world.workspace, database=world.database, http=world.http, shell=False
    ).get_tools()
    model = ScriptedChatModel(script=turns or script(world), replayable=True)
    return create_agent(
        model,
        [*tools, goex_tool(delete_item), *extra],
        checkpointer=saver,
        interrupt_before=["tools"],  # a person looks at every tool step before it runs
    )


def next_input(state: Any) -> Any:
    """What the person does at a paused or finished state; None once the conversation ends."""
    if any(task.interrupts for task in state.tasks):
        return Command(resume="yes")
    if state.next:
        return None  # go on past `interrupt_before`
    humans = sum(m.type == "human" for m in state.values.get("messages", []))
    if humans < len(USER_TURNS):
        return {"messages": [("user", USER_TURNS[humans])]}
    return "finished"


def converse(
    agent: Any,
    config: Any,
    world: Any,
    handler: GoexCallbackHandler,
    *,
    until: Callable[[Any], bool] = lambda state: False,
) -> dict[str, Any]:
    """Drive the conversation from `config` to its end (or to a state `until` accepts), as
    the person would. Returns the world as it was at every checkpoint made meanwhile, when it
    was made (a resume streams the checkpoint it starts from again)."""
    worlds: dict[str, Any] = {}
    thread = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
    start = config
    while (given := next_input(state := agent.get_state(start))) != "finished":
        if until(state):
            break
        for mode, chunk in agent.stream(
            given,
            {**start, "callbacks": [handler]},
            stream_mode=["checkpoints", "updates"],
        ):
            if mode == "checkpoints":
                checkpoint_id = chunk["config"]["configurable"]["checkpoint_id"]
                worlds.setdefault(checkpoint_id, world.snapshot())
        start = thread  # the conversation goes on from its newest checkpoint
    return worlds


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    """An agent state, its messages as what they say (a replay makes messages with new ids)."""
    return {
        key: [_said(m) for m in value] if key == "messages" else value
        for key, value in values.items()
    }


def _said(message: BaseMessage) -> tuple[Any, ...]:
    calls = [(c["name"], c["args"], c["id"]) for c in getattr(message, "tool_calls", [])]
    content = message.content
    if message.type == "tool" and isinstance(content, str) and content.startswith("{"):
        answer = json.loads(content)
        answer.pop("step_id", None)  # the journal's id of the new step
        if isinstance(answer.get("headers"), dict):  # an HTTP answer: its Date is the clock's
            answer["headers"].pop("date", None)
        content = answer
    return (message.type, content, calls)


def test_rewind_to_each_checkpoint_restores_agent_and_world_and_replays(
    world: Any, saver: Any
) -> None:
    agent = agent_for(world, saver)
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    start = world.snapshot()
    worlds = converse(agent, config, world, handler)
    end = world.snapshot()
    final = comparable(agent.get_state(config).values)
    assert end["service"] == [
        {"id": 2, "name": "pen", "price": 3},
        {"id": 3, "name": "gift card", "price": 25},
    ]
    assert end["tables"]["orders"] == [(1, 1, "paid"), (3, 2, "paid")]
    assert final["messages"][-1] == ("ai", "The catalog and the orders are done.", [])
    history = list(agent.get_state_history(config))  # newest first
    assert len(history) >= 12 and len(handler.run_ids) == 5  # the invocations that call tools
    assert {c.config["configurable"]["checkpoint_id"] for c in history} <= set(worlds)

    thread = config["configurable"]["thread_id"]
    calls = [
        s for run in world.journal.find_runs(thread_id=thread)
        for s in world.journal.steps(run.id) if s.parent_id is None
    ]  # fmt: skip
    assert [s.tool for s in calls] == [
        "write_file", "run_sql", "http_request", "edit_file", "run_sql", "delete_item"
    ] or [s.tool for s in calls] == [
        "write_file", "run_sql", "edit_file", "http_request", "run_sql", "delete_item"
    ]  # fmt: skip
    ran_after = {c.config["configurable"]["checkpoint_id"] for c in history}
    for call in calls:
        place = place_of(call)
        assert place is not None and place.thread_id == thread
        assert place.checkpoint_id in ran_after and place.task_ns.startswith("tools:")

    for checkpoint in history[1:]:  # each earlier checkpoint in turn, newest first
        checkpoint_id = checkpoint.config["configurable"]["checkpoint_id"]
        report = rewind(agent, checkpoint.config, journal=world.journal)
        assert report.complete, report
        assert world.snapshot() == worlds[checkpoint_id], checkpoint.metadata
        resumed = agent.get_state(report.config)
        assert comparable(resumed.values) == comparable(checkpoint.values)
        assert resumed.next == checkpoint.next

        converse(agent, report.config, world, handler)  # the replay
        assert world.snapshot() == end
        assert comparable(agent.get_state(config).values) == final

    points = thread_checkpoints(thread, journal=world.journal)  # counted by bisection
    everything = [s for s in thread_steps(thread, journal=world.journal) if s.parent_id is None]
    assert len(points) > len(calls) and len(everything) > len(calls)  # replays and branches
    for point in points:
        at = Checkpoint(thread_id=thread, checkpoint_id=point.checkpoint_id)
        assert point.calls == sum(made_after(c, at) for c in everything)

    report = rewind(agent, history[-1].config, journal=world.journal)
    assert world.snapshot() == start
    effects = [s for run_id in handler.run_ids for s in world.journal.steps(run_id) if s.parent_id]
    assert effects and {s.status for s in effects} == {StepStatus.COMPENSATED}


def test_rewind_at_an_interrupt_undoes_the_finished_parallel_call_and_runs_it_again(
    world: Any, saver: Any
) -> None:
    """The delete waits for a person while the parallel run_sql has finished: LangGraph keeps
    its result with the checkpoint and would hand it back on resume. The rewind undoes the
    DELETE FROM orders and resumes from a copy of the checkpoint, so that it runs again."""
    agent = agent_for(world, saver)
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    asking = converse(
        agent, config, world, handler, until=lambda s: any(t.interrupts for t in s.tasks)
    )
    head = agent.get_state(config)
    assert [t.result is not None for t in head.tasks].count(True) == 1  # run_sql finished
    assert len(world.snapshot()["tables"]["orders"]) == 2
    before = asking[head.config["configurable"]["checkpoint_id"]]

    report = rewind(agent, head.config, journal=world.journal)
    assert world.snapshot() == before and len(before["tables"]["orders"]) == 4
    assert report.config != head.config and "runs them again" in report.notes[0]
    resumed = agent.get_state(report.config)  # as when it was made: no run_sql result
    *made, finished = comparable(head.values)["messages"]
    assert comparable(resumed.values)["messages"] == made and finished[0] == "tool"
    assert [t.result for t in resumed.tasks] == [None, None]

    agent.invoke(Command(resume="yes"), {**report.config, "callbacks": [handler]})
    converse(agent, config, world, handler)
    end = world.snapshot()
    assert end["tables"]["orders"] == [(1, 1, "paid"), (3, 2, "paid")]
    assert end["service"] == [
        {"id": 2, "name": "pen", "price": 3},
        {"id": 3, "name": "gift card", "price": 25},
    ]
    sql = [s for r in handler.run_ids for s in world.journal.steps(r) if s.tool == "run_sql"]
    assert [s.status for s in sql if s.parent_id] == [
        StepStatus.APPLIED, StepStatus.COMPENSATED, StepStatus.APPLIED
    ]  # fmt: skip


def outsider(world: Any, what: str) -> str:
    """A person changes, outside goex, what the agent's first call of that kind changed;
    returns the tool whose undo now meets it."""
    if what == "file":
        (world.root / "notes" / "sale.md").write_text("edited by a person\n")
        return "write_file"
    if what == "row":
        with sqlite3.connect(world.db_path) as db:
            db.execute("UPDATE customers SET name = 'Grace Hopper' WHERE id = 2")
        db.close()
        return "run_sql"
    item = {"name": "gift card", "price": 30}
    assert httpx.put(f"{world.service.url}/items/3", json=item).status_code == 200
    return "http_request"


def effects(world: Any, handler: GoexCallbackHandler) -> list[Any]:
    return [s for run_id in handler.run_ids for s in world.journal.steps(run_id) if s.parent_id]


@pytest.mark.parametrize("what", ["file", "row", "item"])
def test_a_conflict_stops_the_rewind_before_anything_is_undone(world: Any, what: str) -> None:
    agent = agent_for(world, InMemorySaver())
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    start = world.snapshot()
    converse(agent, config, world, handler)
    tool = outsider(world, what)
    changed = world.snapshot()
    first = list(agent.get_state_history(config))[-1]

    plan = rewind(agent, first.config, journal=world.journal, dry_run=True)
    assert not plan.complete and len(plan.outcomes) == 6
    (conflict,) = plan.blocked
    assert (conflict.tool, conflict.outcome) == (tool, "conflict")
    assert {o.outcome for o in plan.outcomes} == {"would_compensate", "conflict"}

    with pytest.raises(RollbackFailed, match="before undoing anything") as stopped:
        rewind(agent, first.config, journal=world.journal)
    assert [(o.step_id, o.outcome) for o in stopped.value.report.blocked] == [
        (conflict.step_id, "conflict")
    ]
    assert world.snapshot() == changed
    assert {s.status for s in effects(world, handler)} == {StepStatus.APPLIED}
    assert {world.journal.get_run(r).status for r in handler.run_ids} == {RunStatus.COMPLETED}

    report = rewind(agent, first.config, journal=world.journal, force=True)
    assert report.complete and len(report.compensated) == 6
    assert world.snapshot() == start


def twice(world: Any, what: str) -> tuple[list[Any], Callable[[], None], str]:
    """Two calls of the agent changing one file, row or item, what a person does to it in
    between, and what the conflict names."""
    if what == "file":
        call = lambda text: ("write_file", {"path": "notes/a.md", "content": text})  # noqa: E731

        def person() -> None:
            (world.root / "notes" / "a.md").write_text("the person's\n")

        return [[call("one\n")], [call("two\n")]], person, "notes/a.md"
    if what == "row":
        sql = "UPDATE customers SET tier = '{}' WHERE id = 2"

        def person() -> None:
            with sqlite3.connect(world.db_path) as db:
                db.execute("UPDATE customers SET name = 'G. Hopper' WHERE id = 2")
            db.close()

        calls = [[("run_sql", {"sql": sql.format(tier)})] for tier in ("gold", "platinum")]
        return calls, person, "customers"
    url = f"{world.service.url}/items/2"
    put = lambda price: ("http_request", {"method": "PUT", "url": url,  # noqa: E731
                                          "body": {"name": "pen", "price": price}})  # fmt: skip

    def person() -> None:
        assert httpx.put(url, json={"name": "blue pen", "price": 4}).status_code == 200

    return [[put(4)], [put(5)]], person, "/items/2"


@pytest.mark.parametrize("what", ["file", "row", "item"])
def test_a_change_between_two_calls_on_one_thing_is_foreseen(world: Any, what: str) -> None:
    """A person changes it while the agent is paused between its two calls: undoing the
    second brings the person's change back, so undoing the first would overwrite it."""
    calls, person, named = twice(world, what)
    agent = agent_for(world, InMemorySaver(), [*calls, "done", "nothing more"])
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    written = lambda s: sum(m.type == "tool" for m in s.values.get("messages", [])) == 1  # noqa: E731
    converse(agent, config, world, handler, until=lambda s: written(s) and bool(s.next))
    person()
    converse(agent, config, world, handler)
    changed = world.snapshot()
    first = list(agent.get_state_history(config))[-1]
    with pytest.raises(RollbackFailed, match="before undoing anything") as stopped:
        rewind(agent, first.config, journal=world.journal)
    (blocked,) = stopped.value.report.blocked
    assert blocked.outcome == "conflict" and named in blocked.detail
    assert blocked.step_id == effects(world, handler)[0].id  # the older call
    assert world.snapshot() == changed


def test_an_irreversible_call_stops_the_rewind_unless_skipped(world: Any) -> None:
    """A tool goex does not journal the effect of (a plain LangChain tool) is irreversible:
    the rewind names it and undoes nothing; told to skip it, it undoes the rest."""
    log = world.root / "agent.log"

    @tool
    def log_line(line: str) -> str:
        """Append a line to the agent's log."""
        with log.open("a") as fh:
            fh.write(line + "\n")
        return "logged"

    turns = [
        [("write_file", {"path": "notes/a.md", "content": "one\n"})],
        [("log_line", {"line": "wrote a.md"})],
        [("write_file", {"path": "notes/b.md", "content": "two\n"})],
        "done",
        "nothing more",
    ]
    agent = agent_for(world, InMemorySaver(), turns, extra=[log_line])
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    start = world.snapshot()
    converse(agent, config, world, handler)
    changed = world.snapshot()
    first = list(agent.get_state_history(config))[-1]

    plan = rewind(agent, first.config, journal=world.journal, dry_run=True)
    assert [(o.tool, o.outcome) for o in plan.outcomes] == [
        ("write_file", "would_compensate"),
        ("log_line", "irreversible"),
        ("write_file", "would_compensate"),
    ]
    assert not plan.complete
    with pytest.raises(RollbackFailed, match="before undoing anything") as stopped:
        rewind(agent, first.config, journal=world.journal)
    assert [(o.tool, o.outcome) for o in stopped.value.report.blocked] == [
        ("log_line", "irreversible")
    ]
    assert world.snapshot() == changed

    report = rewind(agent, first.config, journal=world.journal, on_irreversible="skip")
    assert report.complete
    assert [(o.tool, o.outcome) for o in report.outcomes] == [
        ("write_file", "compensated"),
        ("log_line", "irreversible"),
        ("write_file", "compensated"),
    ]
    after = world.snapshot()
    assert after["files"].pop("agent.log")["type"] == "file"  # goex could not undo it
    assert after == start


def test_a_run_still_working_stops_the_rewind_before_anything_is_undone(world: Any) -> None:
    """The thread's agent is in the middle of a tool call (its step pending, its process
    alive): the rewind refuses until it has finished, or is told `live`."""
    actions.slow_started.clear()
    actions.slow_may_finish.clear()
    first_file, second_file = str(world.root / "a.txt"), str(world.root / "b.txt")
    turns = [
        [("write_text", {"path": first_file, "text": "one\n"})],
        [("slow_write", {"path": second_file, "text": "two\n"})],
        "done",
    ]
    model = ScriptedChatModel(script=turns, replayable=True)
    saver = InMemorySaver()
    agent = create_agent(model, [goex_tool(write_text), goex_tool(slow_write)], checkpointer=saver)
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    start = world.snapshot()
    invoked = threading.Thread(
        target=agent.invoke,
        args=({"messages": [("user", "go")]}, {**config, "callbacks": [handler]}),
    )
    invoked.start()
    try:
        assert actions.slow_started.wait(30)
        first = list(agent.get_state_history(config))[-1]
        with pytest.raises(RollbackFailed, match="before undoing anything") as stopped:
            rewind(agent, first.config, journal=world.journal)
        blocked = stopped.value.report.blocked
        assert [o.outcome for o in blocked] == ["busy"]
        assert "still active" in blocked[0].detail
        assert (world.root / "a.txt").read_text() == "one\n"
    finally:
        actions.slow_may_finish.set()
        invoked.join(30)
    report = rewind(agent, first.config, journal=world.journal)
    assert report.complete and len(report.compensated) == 2
    assert world.snapshot() == start


def test_fork_brings_the_world_back_to_the_checkpoint_it_updates(world: Any) -> None:
    """update_state on an old checkpoint (the person says something else after the first
    turn): `fork` first undoes what the agent did since, then forks; the conversation goes
    on from the fork on the world as it was there."""
    agent = agent_for(world, InMemorySaver())
    handler = GoexCallbackHandler(journal=world.journal)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    worlds = converse(agent, config, world, handler)
    end = world.snapshot()
    turn_done = next(
        s for s in agent.get_state_history(config)
        if not s.next and len(s.values["messages"]) == 6
    )  # fmt: skip
    said = {"messages": [("user", "the catalog now, please")]}
    plan = fork(
        agent, turn_done.config, said, as_node="__start__", journal=world.journal, dry_run=True
    )
    assert plan.complete and len(plan.outcomes) == 4
    assert world.snapshot() == end  # a dry run undoes and forks nothing

    report = fork(agent, turn_done.config, said, as_node="__start__", journal=world.journal)
    assert world.snapshot() == worlds[turn_done.config["configurable"]["checkpoint_id"]]
    forked = agent.get_state(report.config)
    assert forked.values["messages"][-1].content == "the catalog now, please"
    assert forked.next == ("model",)
    assert forked.parent_config["configurable"]["checkpoint_id"] == (
        turn_done.config["configurable"]["checkpoint_id"]
    )
    converse(agent, report.config, world, handler)
    assert world.snapshot() == end
