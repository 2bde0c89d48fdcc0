"""A real LangChain agent loop (`create_agent`) over goex tools, journaled by the handler."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import ToolException, tool
from langchain_goex import GoexCallbackHandler, goex_tool, reversible_tool
from langchain_goex.chat_models import ScriptedChatModel

import goex_tools as goex
from goex_tools import Journal, Reversibility, RunStatus, StepStatus
from tests.integrations.actions import (
    append_line,
    append_line_async,
    append_signed,
    drop_last_line,
    log_typed,
    read_text,
    unlog_typed,
    write_text,
    write_text_async,
    write_text_strictly,
)
from tests.integrations.checks import (
    assert_compensated_once,
    assert_runs_kept_apart,
    assert_tool_calls,
    assert_undo_last_then_rest,
    transitions,
)
from tests.integrations.conftest import manifest


def agent_tools() -> list:  # type: ignore[type-arg]
    return [
        goex_tool(write_text),
        goex_tool(write_text_strictly),
        reversible_tool(append_line, undo=drop_last_line),
        read_text,
    ]


def invoke(script: list, handler: GoexCallbackHandler) -> tuple[str, dict]:  # type: ignore[type-arg]
    agent = create_agent(ScriptedChatModel(script=script), tools=agent_tools())
    run_id = uuid.uuid4()
    result = agent.invoke(
        {"messages": [("user", "edit the workspace")]},
        config={"callbacks": [handler], "run_id": run_id},
    )
    return str(run_id), result


def test_agent_run_is_journaled_call_by_call_and_rolls_back(
    journal: Journal, workspace: Path
) -> None:
    before = manifest(workspace)
    notes, keep, report = (str(workspace / n) for n in ("notes.txt", "keep.txt", "report.txt"))
    handler = GoexCallbackHandler(journal=journal, read_only_tools=["read_text"])
    script = [
        [("write_text", {"path": report, "text": "summary\n"})],
        [("read_text", {"path": notes})],  # one call per turn: parallel calls race
        [("append_line", {"path": notes, "line": "second line"})],
        [("write_text", {"path": keep, "text": "rewritten\n"})],
        "done",
    ]
    run_id, result = invoke(script, handler)

    assert result["messages"][-1].content == "done"
    assert handler.run_ids == [run_id]
    run = journal.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.metadata["framework"] == "langchain"
    assert_tool_calls(
        journal,
        run_id,
        [
            ("write_text", Reversibility.CONTAINER, {"path": report, "text": "summary\n"}),
            ("read_text", Reversibility.NO_EFFECT, {"path": notes}),
            ("append_line", Reversibility.CONTAINER, {"path": notes, "line": "second line"}),
            ("write_text", Reversibility.CONTAINER, {"path": keep, "text": "rewritten\n"}),
        ],
        leaves=["write_text", "append_line", "write_text"],
    )
    assert [s.domain for s in journal.steps(run_id) if s.parent_id] == ["python"] * 3
    assert (workspace / "notes.txt").read_text() == "first line\nsecond line\n"
    assert_undo_last_then_rest(journal, run_id, workspace, before, last="keep.txt")


@tool
def flaky_lookup(key: str) -> str:
    """Look a key up in a service that is down."""
    raise ToolException(f"lookup service unavailable for {key}")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_errors_are_journaled_as_failed_and_never_compensated(
    journal: Journal, workspace: Path, mode: str
) -> None:
    """`invoke` over a sync tool, `ainvoke` over a coroutine tool: the same journal."""
    before = manifest(workspace)
    handler = GoexCallbackHandler(journal=journal)
    missing = str(workspace / "no-such-dir" / "x.txt")
    report = str(workspace / "report.txt")
    script = [
        [("write_text", {"path": report, "text": "draft\n"})],
        [("write_text", {"path": missing, "text": "lost\n"})],  # raises FileNotFoundError
        "gave up",
    ]
    writer = goex_tool(write_text) if mode == "sync" else goex_tool(write_text_async)
    writer.name = "write_text"
    agent = create_agent(ScriptedChatModel(script=script), tools=[writer])
    request, config = {"messages": [("user", "go")]}, {"callbacks": [handler]}
    if mode == "sync":
        result = agent.invoke(request, config=config)
    else:
        result = asyncio.run(agent.ainvoke(request, config=config))
    error = [m for m in result["messages"] if m.type == "tool"][1]
    assert error.status == "error" and error.content.startswith("FileNotFoundError: ")
    run_id = handler.last_run_id
    assert run_id is not None and journal.get_run(run_id).status is RunStatus.COMPLETED
    statuses = [(s.tool, s.status, s.parent_id is None) for s in journal.steps(run_id)]
    assert statuses == [
        ("write_text", StepStatus.APPLIED, True),
        ("write_text", StepStatus.APPLIED, False),
        ("write_text", StepStatus.FAILED, True),
        ("write_text", StepStatus.FAILED, False),
    ]
    failed = [s for s in journal.steps(run_id) if s.status is StepStatus.FAILED]
    assert all("FileNotFoundError" in (s.error or "") for s in failed)

    report_ = goex.rollback(run_id, journal=journal)
    assert len(report_.compensated) == 1
    assert manifest(workspace) == before
    for step in failed:
        assert transitions(journal, step.id) == ["pending", "failed"]


@tool
def crash(reason: str) -> str:
    """A tool with a bug."""
    raise RuntimeError(reason)


def test_an_error_that_ends_the_agent_fails_the_run_and_it_still_rolls_back(
    journal: Journal, workspace: Path
) -> None:
    before = manifest(workspace)
    handler = GoexCallbackHandler(journal=journal)
    script = [
        [("write_text", {"path": str(workspace / "report.txt"), "text": "draft\n"})],
        [("crash", {"reason": "bug in a plain tool"})],
        "never reached",
    ]
    agent = create_agent(ScriptedChatModel(script=script), tools=[goex_tool(write_text), crash])
    with pytest.raises(RuntimeError, match="bug in a plain tool"):
        agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    run_id = handler.last_run_id
    assert run_id is not None and journal.get_run(run_id).status is RunStatus.FAILED
    assert [(s.tool, s.status) for s in journal.steps(run_id)] == [
        ("write_text", StepStatus.APPLIED),
        ("write_text", StepStatus.APPLIED),
        ("crash", StepStatus.FAILED),  # a plain tool: irreversible, and it failed
    ]
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


def test_handled_tool_error_lets_the_agent_go_on(journal: Journal, workspace: Path) -> None:
    before = manifest(workspace)
    handler = GoexCallbackHandler(journal=journal)
    report = str(workspace / "report.txt")
    wrapped = reversible_tool(flaky_lookup, undo=None)  # an irreversible, failing tool
    script = [
        [("flaky_lookup", {"key": "k"})],
        [("write_text", {"path": report, "text": "without the lookup\n"})],
        "done",
    ]
    agent = create_agent(ScriptedChatModel(script=script), tools=[wrapped, goex_tool(write_text)])
    result = agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    tool_messages = [m for m in result["messages"] if m.type == "tool"]
    assert tool_messages[0].status == "error"
    assert "lookup service unavailable" in tool_messages[0].content
    run_id = handler.last_run_id
    assert run_id is not None
    steps = [(s.tool, s.reversibility, s.status) for s in journal.steps(run_id)]
    assert steps == [
        ("flaky_lookup", Reversibility.CONTAINER, StepStatus.FAILED),
        ("flaky_lookup", Reversibility.IRREVERSIBLE, StepStatus.FAILED),
        ("write_text", Reversibility.CONTAINER, StepStatus.APPLIED),
        ("write_text", Reversibility.REVERSIBLE, StepStatus.APPLIED),
    ]
    goex.rollback(run_id, journal=journal)  # the failed irreversible call is not in the way
    assert manifest(workspace) == before


def test_a_plain_tool_is_journaled_as_irreversible_and_stops_a_rollback(
    journal: Journal, workspace: Path
) -> None:
    notes = str(workspace / "notes.txt")
    handler = GoexCallbackHandler(journal=journal)
    script = [[("append_line", {"path": notes, "line": "unjournaled"})], "done"]
    agent = create_agent(ScriptedChatModel(script=script), tools=[append_line])
    agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    run_id = handler.last_run_id
    assert run_id is not None
    (step,) = journal.steps(run_id)
    assert (step.tool, step.reversibility, step.status) == (
        "append_line",
        Reversibility.IRREVERSIBLE,
        StepStatus.IRREVERSIBLE,
    )
    with pytest.raises(goex.RollbackFailed, match="irreversible"):
        goex.rollback(run_id, journal=journal)


class RefuseWrites:
    def decide(self, proposal: goex.Proposal, run: goex.RunContext) -> goex.Decision:
        if proposal.tool == "write_text":
            return goex.Decision(allowed=False, rule="no-writes", reason="read-only session")
        return goex.Decision(allowed=True)


def test_a_refused_call_reaches_the_model_and_changes_nothing(
    journal: Journal, workspace: Path
) -> None:
    before = manifest(workspace)
    handler = GoexCallbackHandler(journal=journal, gate=RefuseWrites())
    script = [[("write_text", {"path": str(workspace / "x.txt"), "text": "x"})], "ok"]
    agent = create_agent(ScriptedChatModel(script=script), tools=[goex_tool(write_text)])
    result = agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    tool_message = next(m for m in result["messages"] if m.type == "tool")
    assert tool_message.status == "error" and "read-only session" in tool_message.content
    run_id = handler.last_run_id
    assert run_id is not None
    assert [(s.tool, s.status) for s in journal.steps(run_id)] == [
        ("write_text", StepStatus.FAILED),
        ("write_text", StepStatus.REFUSED),
    ]
    assert manifest(workspace) == before


def test_async_agent_run_is_journaled_and_rolls_back_by_its_uuid(
    journal: Journal, workspace: Path
) -> None:
    """`ainvoke`, with a coroutine goex tool, an async-only tool made reversible and a sync
    goex tool; rolled back by the LangChain run id as LangChain gives it (a UUID)."""
    before = manifest(workspace)
    notes, keep, report = (str(workspace / n) for n in ("notes.txt", "keep.txt", "report.txt"))
    tools = [
        goex_tool(write_text_async),
        reversible_tool(append_line_async, undo=drop_last_line),
        goex_tool(write_text),
    ]
    script = [
        [("write_text_async", {"path": report, "text": "summary\n"})],
        [("append_line_async", {"path": notes, "line": "second line"})],
        [("write_text", {"path": keep, "text": "rewritten\n"})],
        "done",
    ]
    handler = GoexCallbackHandler(journal=journal)
    agent = create_agent(ScriptedChatModel(script=script), tools=tools)
    run_id = uuid.uuid4()
    result = asyncio.run(
        agent.ainvoke(
            {"messages": [("user", "edit the workspace")]},
            config={"callbacks": [handler], "run_id": run_id},
        )
    )
    assert result["messages"][-1].content == "done"
    assert handler.run_ids == [str(run_id)]
    assert_tool_calls(
        journal,
        str(run_id),
        [
            ("write_text_async", Reversibility.CONTAINER, {"path": report, "text": "summary\n"}),
            ("append_line_async", Reversibility.CONTAINER, {"path": notes, "line": "second line"}),
            ("write_text", Reversibility.CONTAINER, {"path": keep, "text": "rewritten\n"}),
        ],
        leaves=["write_text", "append_line_async", "write_text"],
    )
    assert (workspace / "notes.txt").read_text() == "first line\nsecond line\n"
    assert_undo_last_then_rest(journal, run_id, workspace, before, last="keep.txt")  # the UUID


def test_an_async_only_tool_made_reversible_refuses_a_sync_call(
    journal: Journal, workspace: Path
) -> None:
    """Like the tool it wraps: said to the caller before anything is journaled or run."""
    wrapped = reversible_tool(append_line_async, undo=drop_last_line)
    with goex.run("sync call", journal=journal) as run:
        answer = wrapped.invoke({"path": str(workspace / "notes.txt"), "line": "x"})
    assert "does not support sync invocation" in answer
    assert journal.steps(run.id) == []
    assert (workspace / "notes.txt").read_text() == "first line\n"


def test_concurrent_async_invocations_and_parallel_calls_keep_their_own_steps(
    journal: Journal, workspace: Path
) -> None:
    """Two agents at once on one handler, each making two calls in one turn (run
    concurrently by the agent): every effect lands under its own call, in its own run."""
    before = manifest(workspace)
    handler = GoexCallbackHandler(journal=journal)

    def script(tag: str) -> list:  # type: ignore[type-arg]
        first, second = (str(workspace / f"{tag}-{n}.txt") for n in (1, 2))
        return [
            [
                ("write_text_async", {"path": first, "text": f"{tag} one\n"}),
                ("write_text", {"path": second, "text": f"{tag} two\n"}),
            ],
            "done",
        ]

    async def both() -> None:
        runs = []
        for tag in ("a", "b"):
            tools = [goex_tool(write_text_async), goex_tool(write_text)]
            agent = create_agent(ScriptedChatModel(script=script(tag)), tools=tools)
            runs.append(agent.ainvoke({"messages": [("user", tag)]}, {"callbacks": [handler]}))
        await asyncio.gather(*runs)

    asyncio.run(both())
    assert_runs_kept_apart(journal, handler.run_ids)
    for run_id in handler.run_ids:
        goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


def test_a_tool_with_injected_arguments_made_reversible(journal: Journal, workspace: Path) -> None:
    """The runtime LangChain injects reaches the tool; the journal and the undo get only what
    the model asked for."""
    before = manifest(workspace)
    notes = str(workspace / "notes.txt")
    handler = GoexCallbackHandler(journal=journal)
    script = [[("append_signed", {"path": notes, "line": "second line"})], "done"]
    tools = [reversible_tool(append_signed, undo=drop_last_line)]
    create_agent(ScriptedChatModel(script=script), tools=tools).invoke(
        {"messages": [("user", "go")]}, config={"callbacks": [handler]}
    )
    assert (workspace / "notes.txt").read_text() == "first line\nsecond line (call_1_0)\n"
    run_id = handler.last_run_id
    assert run_id is not None
    steps = journal.steps(run_id)
    assert [(s.status, s.inputs) for s in steps] == [
        (StepStatus.APPLIED, {"path": notes, "line": "second line"})
    ] * 2
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


class RefusePlainTools:
    def decide(self, proposal: goex.Proposal, run: goex.RunContext) -> goex.Decision:
        if proposal.reversibility is Reversibility.IRREVERSIBLE:
            return goex.Decision(allowed=False, rule="undoable-only", reason="cannot be undone")
        return goex.Decision(allowed=True)


def test_a_refused_plain_tool_does_not_run_and_stops_the_agent(
    journal: Journal, workspace: Path
) -> None:
    """A plain tool is refused from the callback, before LangChain runs it: the refusal ends
    the invocation (wrap the tool with `reversible_tool(..., undo=None)` to let the model
    hear it instead)."""
    before = manifest(workspace)
    handler = GoexCallbackHandler(journal=journal, gate=RefusePlainTools())
    notes = str(workspace / "notes.txt")
    script = [[("append_line", {"path": notes, "line": "x"})], "never reached"]
    agent = create_agent(ScriptedChatModel(script=script), tools=[append_line])
    with pytest.raises(goex.ActionRefused, match="cannot be undone"):
        agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    run_id = handler.last_run_id
    assert run_id is not None and journal.get_run(run_id).status is RunStatus.FAILED
    assert [(s.tool, s.status) for s in journal.steps(run_id)] == [
        ("append_line", StepStatus.REFUSED)
    ]
    assert manifest(workspace) == before

    handler = GoexCallbackHandler(journal=journal, gate=RefusePlainTools())
    wrapped = reversible_tool(append_line, undo=None)
    script = [[("append_line", {"path": notes, "line": "x"})], "understood"]
    agent = create_agent(ScriptedChatModel(script=script), tools=[wrapped])
    result = agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    answer = next(m for m in result["messages"] if m.type == "tool")
    assert answer.status == "error" and "cannot be undone" in answer.content
    assert result["messages"][-1].content == "understood"
    assert manifest(workspace) == before


def test_an_interrupted_and_resumed_invocation_is_two_runs_of_one_thread(
    journal: Journal, workspace: Path
) -> None:
    """Human in the loop (`HumanInTheLoopMiddleware`): the invocation that stops for approval
    and the one that resumes are journaled as two runs, each rolled back on its own."""
    from langchain.agents.middleware import HumanInTheLoopMiddleware
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    before = manifest(workspace)
    report, keep = str(workspace / "report.txt"), str(workspace / "keep.txt")
    script = [
        [("write_text", {"path": report, "text": "draft\n"})],
        [("write_text_strictly", {"path": keep, "text": "approved\n"})],
        "done",
    ]
    agent = create_agent(
        ScriptedChatModel(script=script),
        tools=[goex_tool(write_text), goex_tool(write_text_strictly)],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"write_text_strictly": True})],
        checkpointer=InMemorySaver(),
    )
    handler = GoexCallbackHandler(journal=journal)
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "conversation-1"}}
    paused = agent.invoke({"messages": [("user", "go")]}, config=config)
    assert "__interrupt__" in paused and (workspace / "keep.txt").read_text() == "original\n"
    first = handler.last_run_id
    assert first is not None and journal.get_run(first).status is RunStatus.COMPLETED
    drafted = manifest(workspace)

    agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config=config)
    assert (workspace / "keep.txt").read_text() == "approved\n"
    assert len(handler.run_ids) == 2 and handler.run_ids[0] == first
    second = handler.run_ids[1]
    for run_id in (first, second):
        assert journal.get_run(run_id).metadata["thread_id"] == "conversation-1"
    assert [s.tool for s in journal.steps(second) if s.parent_id] == ["write_text_strictly"]

    goex.rollback(second, journal=journal)  # the approved write only
    assert manifest(workspace) == drafted
    goex.rollback(first, journal=journal)
    assert manifest(workspace) == before


def test_a_subagent_called_as_a_tool_is_part_of_the_same_run(
    journal: Journal, workspace: Path
) -> None:
    """An agent whose tool invokes another agent: the sub-agent's tool calls are journaled
    under the outer call, in the outer invocation's run, and roll back with it: `steps=1`
    undoes that one call with both its effects (`undo_step` undoes a single effect)."""
    before = manifest(workspace)
    notes, keep, report = (str(workspace / n) for n in ("notes.txt", "keep.txt", "report.txt"))
    writes = [
        [("write_text", {"path": keep, "text": "by the writer\n"})],
        [("write_text", {"path": notes, "text": "also by the writer\n"})],
        "ok",
    ]
    writer = create_agent(ScriptedChatModel(script=writes), [goex_tool(write_text)])

    def ask_writer(task: str) -> str:
        """Hand a writing task to the writer agent."""
        answer: str = writer.invoke({"messages": [("user", task)]})["messages"][-1].content
        return answer

    script = [
        [("write_text", {"path": report, "text": "summary\n"})],
        [("ask_writer", {"task": "rewrite keep.txt and notes.txt"})],
        "done",
    ]
    agent = create_agent(
        ScriptedChatModel(script=script), tools=[goex_tool(write_text), goex_tool(ask_writer)]
    )
    handler = GoexCallbackHandler(journal=journal)
    agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    assert len(handler.run_ids) == 1
    run_id = handler.run_ids[0]
    steps = journal.steps(run_id)
    ask = next(s for s in steps if s.tool == "ask_writer")
    inner_calls = [s for s in steps if s.parent_id == ask.id]
    assert [(s.tool, s.reversibility) for s in inner_calls] == [
        ("write_text", Reversibility.CONTAINER)
    ] * 2
    assert [s.inputs["path"] for s in steps if s.parent_id in {c.id for c in inner_calls}] == [
        keep,
        notes,
    ]
    written = manifest(workspace)
    goex.rollback(run_id, steps=1, journal=journal)
    assert manifest(workspace) == {
        **written,
        "keep.txt": before["keep.txt"],
        "notes.txt": before["notes.txt"],
    }
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before
    assert_compensated_once(journal, run_id)


def test_a_reversible_tool_takes_dates_decimals_uuids_paths_enums_models(
    journal: Journal, workspace: Path
) -> None:
    """Arguments pydantic can serialise are journaled as JSON, and the undo gets them back
    as the types it declares."""
    before = manifest(workspace)
    entry = {
        "path": str(workspace / "notes.txt"),
        "day": "2024-02-29",
        "amount": "12.50",
        "ticket": "6f1c2a34-1111-4222-8333-444455556666",
        "priority": "high",
        "owner": {"name": "ada", "team": "ops"},
    }
    handler = GoexCallbackHandler(journal=journal)
    agent = create_agent(
        ScriptedChatModel(script=[[("log_typed", entry)], "done"]),
        tools=[reversible_tool(log_typed, undo=unlog_typed)],
    )
    result = agent.invoke({"messages": [("user", "log it")]}, config={"callbacks": [handler]})
    answer = next(m for m in result["messages"] if m.type == "tool")
    assert answer.status == "success", answer.content
    assert (
        (workspace / "notes.txt")
        .read_text()
        .endswith("2024-02-29 12.50 6f1c2a34-1111-4222-8333-444455556666 high ada@ops\n")
    )
    run_id = handler.last_run_id
    assert run_id is not None
    effect = journal.steps(run_id)[1]
    assert effect.status is StepStatus.APPLIED and effect.inputs == entry
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


class Connection:
    """Something with no JSON form (a live connection, a lock)."""


@tool
def use_connection(connection: Annotated[Any, "a live connection"], line: str) -> str:
    """Do something over a live connection."""
    return line


def test_a_reversible_tool_argument_with_no_json_form_says_to_give_before(
    journal: Journal,
) -> None:
    wrapped = reversible_tool(use_connection, undo=drop_last_line)
    with goex.run("direct", journal=journal) as run:
        answer = wrapped.invoke({"connection": Connection(), "line": "x"})
    assert "connection" in answer and "before=" in answer
    assert [s.status for s in journal.steps(run.id)] == []
