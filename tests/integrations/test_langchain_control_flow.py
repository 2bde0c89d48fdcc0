"""LangGraph's own control flow through goex tools: `interrupt()` pauses the graph (a human
is asked, the model never sees an error) and a resumed call is journaled once; an `ainvoke`
cancelled while a sync goex tool runs in its thread still journals that call."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import BaseTool, tool
from langchain_goex import GoexCallbackHandler, goex_tool, reversible_tool
from langchain_goex.chat_models import ScriptedChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, interrupt

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from tests.integrations import actions
from tests.integrations.actions import drop_last_line, slow_append, slow_write, write_text
from tests.integrations.conftest import manifest


@tool
def append_approved(path: str, line: str) -> str:
    """Append one line to a text file once a person approves."""
    if interrupt({"append": line, "to": path}) != "yes":
        return "declined"
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}"


def write_approved(path: str, text: str) -> str:
    """Write a text file once a person approves."""
    if interrupt({"write": path}) != "yes":
        return "declined"
    return write_text(path, text)


def write_then_ask(path: str, text: str) -> str:
    """Write a draft, then ask a person before writing the final text."""
    write_text(path, "draft\n")
    if interrupt({"publish": path}) != "yes":
        return "kept the draft"
    return write_text(path, text)


def approval_agent(tool_: BaseTool, call: dict[str, Any]) -> Any:
    model = ScriptedChatModel(script=[[(tool_.name, call)], "done"])
    return create_agent(model, tools=[tool_], checkpointer=InMemorySaver())


def pending(journal: Journal) -> list[goex.Step]:
    return journal.steps_with_status(StepStatus.PENDING)


@pytest.mark.parametrize(
    "make",
    [
        lambda: reversible_tool(append_approved, undo=drop_last_line),
        lambda: goex_tool(write_approved),
    ],
    ids=["reversible_tool", "goex_tool"],
)
def test_an_interrupt_in_a_goex_tool_pauses_and_resumes_as_one_call(
    journal: Journal, workspace: Path, make: Any
) -> None:
    before = manifest(workspace)
    notes = str(workspace / "notes.txt")
    wrapped: BaseTool = make()
    call = {"path": notes, "line": "approved"} if "line" in wrapped.args else {
        "path": notes, "text": "approved\n"
    }  # fmt: skip
    agent = approval_agent(wrapped, call)
    handler = GoexCallbackHandler(journal=journal)
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": uuid.uuid4().hex}}

    paused = agent.invoke({"messages": [("user", "go")]}, config=config)
    (question,) = paused["__interrupt__"]
    assert question.value["append" if "line" in call else "write"] in ("approved", notes)
    assert not [m for m in paused["messages"] if m.type == "tool"]  # the model heard nothing
    assert manifest(workspace) == before
    assert [s for run_id in handler.run_ids for s in journal.steps(run_id)] == []
    assert pending(journal) == []

    done = agent.invoke(Command(resume="yes"), config=config)
    assert done["messages"][-1].content == "done"
    assert manifest(workspace) != before
    resumed = handler.last_run_id
    assert resumed is not None
    steps = journal.steps(resumed)
    assert [(s.tool, s.reversibility, s.status) for s in steps if s.parent_id is None] == [
        (wrapped.name, Reversibility.CONTAINER, StepStatus.APPLIED)
    ]
    assert [s.status for s in steps if s.parent_id is not None] == [StepStatus.APPLIED]
    assert pending(journal) == []
    goex.rollback(resumed, journal=journal)
    assert manifest(workspace) == before


def test_a_goex_tool_that_pauses_after_an_effect_keeps_it_journaled(
    journal: Journal, workspace: Path
) -> None:
    """LangGraph replays an interrupted call from its start: the draft written before the
    pause is journaled (under the paused call, which is not failed), then written again."""
    before = manifest(workspace)
    report = str(workspace / "report.txt")
    agent = approval_agent(goex_tool(write_then_ask), {"path": report, "text": "final\n"})
    handler = GoexCallbackHandler(journal=journal)
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": uuid.uuid4().hex}}
    agent.invoke({"messages": [("user", "go")]}, config=config)
    (first,) = handler.run_ids
    call, draft = journal.steps(first)
    assert (call.status, draft.status, draft.parent_id) == (
        StepStatus.APPLIED,
        StepStatus.APPLIED,
        call.id,
    )
    assert any("paused by GraphInterrupt" in note for note in call.notes)
    assert (workspace / "report.txt").read_text() == "draft\n"

    agent.invoke(Command(resume="yes"), config=config)
    assert (workspace / "report.txt").read_text() == "final\n"
    second = handler.last_run_id
    assert second is not None and second != first
    assert [s.status for s in journal.steps(second)] == [StepStatus.APPLIED] * 3
    goex.rollback(second, journal=journal)
    goex.rollback(first, journal=journal)
    assert manifest(workspace) == before


@pytest.mark.parametrize(
    "make",
    [lambda: goex_tool(slow_write), lambda: reversible_tool(slow_append, undo=drop_last_line)],
    ids=["goex_tool", "reversible_tool"],
)
def test_a_cancelled_ainvoke_journals_the_sync_call_when_its_thread_ends(
    journal: Journal, workspace: Path, make: Any
) -> None:
    before = manifest(workspace)
    actions.slow_started.clear()
    actions.slow_may_finish.clear()
    wrapped: BaseTool = make()
    target = str(workspace / "notes.txt")
    call = {"path": target, "line": "late"} if "line" in wrapped.args else {
        "path": target, "text": "late\n"
    }  # fmt: skip
    agent = create_agent(ScriptedChatModel(script=[[(wrapped.name, call)], "done"]), [wrapped])
    handler = GoexCallbackHandler(journal=journal)

    async def cancel_mid_call() -> None:
        task = asyncio.create_task(
            agent.ainvoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
        )
        assert await asyncio.to_thread(actions.slow_started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        actions.slow_may_finish.set()  # the thread goes on after the cancellation

    asyncio.run(cancel_mid_call())  # returns once the executor's threads have ended
    assert manifest(workspace) != before
    run_id = handler.last_run_id
    assert run_id is not None
    steps = journal.steps(run_id)
    assert [(s.parent_id is None, s.status) for s in steps] == [
        (True, StepStatus.APPLIED),
        (False, StepStatus.APPLIED),
    ]
    assert any("stopped waiting" in note for note in steps[0].notes)
    assert goex.recover(journal) == []
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


class AllowAll:
    def decide(self, proposal: goex.Proposal, run: goex.RunContext) -> goex.Decision:
        return goex.Decision(allowed=True)


def test_two_handlers_on_one_journal_journal_each_call_once(
    journal: Journal, workspace: Path
) -> None:
    before = manifest(workspace)
    report = str(workspace / "report.txt")
    script = [[("write_text", {"path": report, "text": "summary\n"})], "done"]
    agent = create_agent(ScriptedChatModel(script=script), tools=[goex_tool(write_text)])
    first, second = GoexCallbackHandler(journal=journal), GoexCallbackHandler(journal=journal)
    agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [first, second]})
    assert first.run_ids == second.run_ids and len(first.run_ids) == 1
    call, effect = journal.steps(first.run_ids[0])
    assert (call.status, effect.status, effect.parent_id) == (
        StepStatus.APPLIED,
        StepStatus.APPLIED,
        call.id,
    )
    goex.rollback(first.run_ids[0], journal=journal)
    assert manifest(workspace) == before


@pytest.mark.parametrize("where", ["invocation", "tool"])
def test_two_handlers_with_different_gates_on_one_journal_are_refused(
    journal: Journal, workspace: Path, where: str
) -> None:
    """Refused when both first see the same run: the invocation's start, or a call's (the
    second handler given to the tool only: the first one's step for it is failed)."""
    before = manifest(workspace)
    report = str(workspace / "report.txt")
    first, second = (
        GoexCallbackHandler(journal=journal),
        GoexCallbackHandler(journal=journal, gate=AllowAll()),
    )
    script = [[("write_text", {"path": report, "text": "summary\n"})], "done"]
    writer = goex_tool(write_text, callbacks=[second] if where == "tool" else None)
    agent = create_agent(ScriptedChatModel(script=script), tools=[writer])
    callbacks = [first] if where == "tool" else [first, second]
    with pytest.raises(goex.GoexError, match="different gates"):
        agent.invoke({"messages": [("user", "go")]}, config={"callbacks": callbacks})
    assert manifest(workspace) == before
    assert pending(journal) == []
    steps = [s for run in journal.list_runs() for s in journal.steps(run.id)]
    assert [(s.tool, s.status) for s in steps] == (
        [("write_text", StepStatus.FAILED)] if where == "tool" else []
    )
