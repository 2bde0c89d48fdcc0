"""LlamaIndex's own control flow through goex tools: a tool that takes the workflow `Context`
and waits for a person (`ctx.wait_for_event`) pauses without a step and is journaled once
when it resumes; a cancelled run journals a sync goex call when its thread ends."""

# No `from __future__ import annotations`: LlamaIndex finds a tool's `Context` parameter by
# its annotation object, as a user's module without that import gives it.

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent
from llama_index.tools.goex import (
    GoexSpanHandler,
    goex_function_tool,
    installed_handlers,
    reversible_function_tool,
)
from llama_index.tools.goex.scripted import scripted_llm

import goex_tools as goex
from goex_tools import Journal, Reversibility, StepStatus
from goex_tools.tracker import HandlerConflict
from tests.integrations import actions
from tests.integrations.actions import drop_last_line, slow_write, write_text
from tests.integrations.conftest import LLAMAINDEX_WARNINGS, manifest

pytestmark = LLAMAINDEX_WARNINGS


@pytest.fixture
def handler(journal: Journal) -> Iterator[GoexSpanHandler]:
    installed = GoexSpanHandler(journal=journal).install()
    yield installed
    installed.uninstall()


async def ask(ctx: Context, question: str) -> bool:
    answer = await ctx.wait_for_event(
        HumanResponseEvent,
        waiter_id=question,
        waiter_event=InputRequiredEvent(prefix=question),
    )
    return bool(answer.response == "yes")


async def add_line_approved(ctx: Context, path: str, line: str) -> str:
    """Append one line to a text file once a person approves."""
    if not await ask(ctx, f"append {line!r} to {path}?"):
        return "declined"
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}"


async def write_approved(ctx: Context, path: str, text: str) -> str:
    """Write a text file once a person approves."""
    if not await ask(ctx, f"write {path}?"):
        return "declined"
    return write_text(path, text)


def counted_add_line(ctx: Context, path: str, line: str) -> str:
    """Append one line to a text file; counts the appends in the workflow's state."""
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}"


def run_agent(tools: list[Any], script: list[Any]) -> str:
    agent = FunctionAgent(tools=tools, llm=scripted_llm(script))

    async def go() -> str:
        return str(await agent.run("go"))

    return asyncio.run(go())


@pytest.mark.parametrize(
    "make",
    [
        lambda: reversible_function_tool(add_line_approved, undo=drop_last_line),
        lambda: goex_function_tool(write_approved),
    ],
    ids=["reversible_function_tool", "goex_function_tool"],
)
def test_a_tool_waiting_for_a_person_pauses_without_a_step_and_resumes_once(
    journal: Journal, handler: GoexSpanHandler, workspace: Path, make: Any
) -> None:
    before = manifest(workspace)
    notes = str(workspace / "notes.txt")
    tool: FunctionTool = make()
    assert tool.ctx_param_name == "ctx"
    assert "ctx" not in tool.metadata.get_parameters_dict()["properties"]
    name = tool.metadata.get_name()
    call = {"path": notes, "line": "approved"} if name.startswith("add") else {
        "path": notes, "text": "approved\n"
    }  # fmt: skip
    agent = FunctionAgent(tools=[tool], llm=scripted_llm([[(name, call)], "done"]))
    seen_while_waiting: list[list[goex.Step]] = []

    async def converse() -> str:
        run = agent.run("go")
        async for event in run.stream_events():
            if isinstance(event, InputRequiredEvent):
                seen_while_waiting.append(
                    [s for run_id in handler.run_ids for s in journal.steps(run_id)]
                    + journal.steps_with_status(StepStatus.PENDING)
                )
                assert manifest(workspace) == before
                assert run.ctx is not None
                run.ctx.send_event(HumanResponseEvent(response="yes"))
        return str(await run)

    assert asyncio.run(converse()) == "done"
    assert seen_while_waiting == [[]]  # asked once; the pause left no step
    assert manifest(workspace) != before
    (run_id,) = handler.run_ids
    steps = journal.steps(run_id)
    assert [(s.tool, s.reversibility, s.status, s.inputs) for s in steps if not s.parent_id] == [
        (name, Reversibility.CONTAINER, StepStatus.APPLIED, call)
    ]
    assert [s.status for s in steps if s.parent_id] == [StepStatus.APPLIED]
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


def test_a_reversible_tool_taking_the_context_journals_only_the_model_arguments(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    """The Context LlamaIndex injects reaches the function, not the journal or the undo."""
    before = manifest(workspace)
    notes = str(workspace / "notes.txt")
    tool = reversible_function_tool(counted_add_line, undo=drop_last_line)
    call = {"path": notes, "line": "second line"}
    assert run_agent([tool], [[("counted_add_line", call)], "done"]) == "done"
    (run_id,) = handler.run_ids
    steps = journal.steps(run_id)
    assert [(s.status, s.inputs) for s in steps] == [(StepStatus.APPLIED, call)] * 2
    assert steps[1].compensation is not None
    assert steps[1].compensation.args["kwargs"] == call
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


def test_a_cancelled_run_journals_a_sync_goex_call_when_its_thread_ends(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    before = manifest(workspace)
    actions.slow_started.clear()
    actions.slow_may_finish.clear()
    call = {"path": str(workspace / "notes.txt"), "text": "late\n"}
    agent = FunctionAgent(
        tools=[goex_function_tool(slow_write)], llm=scripted_llm([[("slow_write", call)], "done"])
    )

    async def cancel_mid_call() -> None:
        run = agent.run("go")
        assert await asyncio.to_thread(actions.slow_started.wait, 30)
        await run.cancel_run()
        with pytest.raises(BaseException):  # noqa: B017 (the workflow's own cancellation error)
            await run
        actions.slow_may_finish.set()  # the thread goes on after the cancellation

    asyncio.run(cancel_mid_call())  # returns once the executor's threads have ended
    assert manifest(workspace) != before
    (run_id,) = handler.run_ids
    steps = journal.steps(run_id)
    assert [(s.parent_id is None, s.status) for s in steps] == [
        (True, StepStatus.APPLIED),
        (False, StepStatus.APPLIED),
    ]
    assert goex.recover(journal) == []
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


def run_writer(workspace: Path) -> str:
    call = {"path": str(workspace / "report.txt"), "text": "summary\n"}
    return run_agent([goex_function_tool(write_text)], [[("write_text", call)], "done"])


def test_two_handlers_installed_on_one_journal_journal_each_call_once(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    """A notebook cell run twice: a second handler on the journal follows the first."""
    before = manifest(workspace)
    again = GoexSpanHandler(journal=journal).install()
    try:
        assert run_writer(workspace) == "done"
    finally:
        again.uninstall()
    assert handler.run_ids == again.run_ids and len(handler.run_ids) == 1
    call, effect = journal.steps(handler.run_ids[0])
    assert (call.status, effect.status, effect.parent_id) == (
        StepStatus.APPLIED,
        StepStatus.APPLIED,
        call.id,
    )
    goex.rollback(handler.run_ids[0], journal=journal)
    assert manifest(workspace) == before


def test_installing_a_handler_twice_then_uninstalling_it_once_removes_it(
    journal: Journal, workspace: Path
) -> None:
    handler = GoexSpanHandler(journal=journal)
    assert handler.install() is handler.install()
    assert installed_handlers().count(handler) == 1
    handler.uninstall()
    assert handler not in installed_handlers()
    assert run_writer(workspace) == "done"
    assert handler.run_ids == []


class AllowAll:
    def decide(self, proposal: goex.Proposal, run: goex.RunContext) -> goex.Decision:
        return goex.Decision(allowed=True)


def test_a_handler_with_another_gate_on_the_same_journal_is_refused(
    journal: Journal, handler: GoexSpanHandler
) -> None:
    other = GoexSpanHandler(journal=journal, gate=AllowAll())
    with pytest.raises(HandlerConflict, match="another gate is installed"):
        other.install()
    assert other not in installed_handlers() and handler in installed_handlers()
