"""A real LlamaIndex agent (`FunctionAgent`) over goex tools, journaled by the span handler."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.tools import FunctionTool
from llama_index.tools.goex import (
    GoexSpanHandler,
    goex_function_tool,
    reversible_function_tool,
)
from llama_index.tools.goex.scripted import scripted_llm

import goex_tools as goex
from goex_tools import Journal, Reversibility, RunStatus, StepStatus
from tests.integrations.actions import (
    add_line,
    add_line_async,
    drop_last_line,
    read_file,
    write_text,
    write_text_async,
)
from tests.integrations.checks import (
    assert_compensated_once,
    assert_runs_kept_apart,
    assert_tool_calls,
    assert_undo_last_then_rest,
    transitions,
)
from tests.integrations.conftest import LLAMAINDEX_WARNINGS, manifest

pytestmark = LLAMAINDEX_WARNINGS


@pytest.fixture
def handler(journal: Journal) -> Iterator[GoexSpanHandler]:
    installed = GoexSpanHandler(journal=journal, read_only_tools=["read_file"]).install()
    yield installed
    installed.uninstall()


def run_agent(script: list, tools: list) -> str:  # type: ignore[type-arg]
    return run(FunctionAgent(tools=tools, llm=scripted_llm(script)))


def run(workflow: Any) -> str:
    async def go() -> str:
        return str(await workflow.run("edit the workspace"))

    return asyncio.run(go())


def test_agent_run_is_journaled_call_by_call_and_rolls_back(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    before = manifest(workspace)
    notes, keep, report = (str(workspace / n) for n in ("notes.txt", "keep.txt", "report.txt"))
    tools = [
        goex_function_tool(write_text),
        reversible_function_tool(add_line, undo=drop_last_line),
        FunctionTool.from_defaults(read_file),
    ]
    script = [
        [("write_text", {"path": report, "text": "summary\n"})],
        [("read_file", {"path": notes})],
        [("add_line", {"path": notes, "line": "second line"})],
        [("write_text", {"path": keep, "text": "rewritten\n"})],
        "done",
    ]
    assert run_agent(script, tools) == "done"

    assert len(handler.run_ids) == 1
    run_id = handler.run_ids[0]
    run = journal.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.metadata["framework"] == "llamaindex"
    assert_tool_calls(
        journal,
        run_id,
        [
            ("write_text", Reversibility.CONTAINER, {"path": report, "text": "summary\n"}),
            ("read_file", Reversibility.NO_EFFECT, {"path": notes}),
            ("add_line", Reversibility.CONTAINER, {"path": notes, "line": "second line"}),
            ("write_text", Reversibility.CONTAINER, {"path": keep, "text": "rewritten\n"}),
        ],
        leaves=["write_text", "add_line", "write_text"],
    )
    assert_undo_last_then_rest(journal, run_id, workspace, before, last="keep.txt")


def test_tool_errors_are_journaled_as_failed_and_never_compensated(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    before = manifest(workspace)
    report = str(workspace / "report.txt")
    missing = str(workspace / "no-such-dir" / "x.txt")
    script = [
        [("write_text", {"path": report, "text": "draft\n"})],
        [("write_text", {"path": missing, "text": "lost\n"})],  # raises FileNotFoundError
        "done anyway",
    ]
    assert run_agent(script, [goex_function_tool(write_text)]) == "done anyway"
    run_id = handler.last_run_id
    assert run_id is not None
    steps = journal.steps(run_id)
    assert [(s.status, s.parent_id is None) for s in steps] == [
        (StepStatus.APPLIED, True),
        (StepStatus.APPLIED, False),
        (StepStatus.FAILED, True),
        (StepStatus.FAILED, False),
    ]
    assert all("FileNotFoundError" in (s.error or "") for s in steps[2:])
    report_ = goex.rollback(run_id, journal=journal)
    assert report_.compensated == [steps[1].id]
    assert manifest(workspace) == before
    assert [transitions(journal, s.id) for s in steps[2:]] == [["pending", "failed"]] * 2


def test_a_plain_tool_is_journaled_as_irreversible(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    notes = str(workspace / "notes.txt")
    script = [[("add_line", {"path": notes, "line": "unjournaled"})], "done"]
    run_agent(script, [FunctionTool.from_defaults(add_line)])
    run_id = handler.last_run_id
    assert run_id is not None
    (step,) = journal.steps(run_id)
    assert (step.tool, step.reversibility, step.status) == (
        "add_line",
        Reversibility.IRREVERSIBLE,
        StepStatus.IRREVERSIBLE,
    )
    with pytest.raises(goex.RollbackFailed, match="irreversible"):
        goex.rollback(run_id, journal=journal)


def test_an_agent_run_without_tool_calls_leaves_no_run(
    journal: Journal, handler: GoexSpanHandler
) -> None:
    assert run_agent(["nothing to do"], [goex_function_tool(write_text)]) == "nothing to do"
    assert handler.run_ids == []


def test_async_tools_are_journaled_and_roll_back(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    """A coroutine goex tool, a coroutine made reversible and an async FunctionTool made
    reversible, awaited by the agent."""
    before = manifest(workspace)
    notes, keep, report = (str(workspace / n) for n in ("notes.txt", "keep.txt", "report.txt"))
    async_tool = FunctionTool.from_defaults(async_fn=add_line_async, name="add_note")
    tools = [
        goex_function_tool(write_text_async),
        reversible_function_tool(add_line_async, undo=drop_last_line),
        reversible_function_tool(async_tool, undo=drop_last_line),
    ]
    script = [
        [("write_text_async", {"path": report, "text": "summary\n"})],
        [("add_line_async", {"path": notes, "line": "second line"})],
        [("add_note", {"path": keep, "line": "kept"})],
        "done",
    ]
    assert run_agent(script, tools) == "done"
    run_id = handler.last_run_id
    assert run_id is not None and handler.run_ids == [run_id]
    assert_tool_calls(
        journal,
        run_id,
        [
            ("write_text_async", Reversibility.CONTAINER, {"path": report, "text": "summary\n"}),
            ("add_line_async", Reversibility.CONTAINER, {"path": notes, "line": "second line"}),
            ("add_note", Reversibility.CONTAINER, {"path": keep, "line": "kept"}),
        ],
        leaves=["write_text", "add_line_async", "add_note"],
    )
    assert (workspace / "keep.txt").read_text() == "original\nkept\n"
    assert_undo_last_then_rest(journal, run_id, workspace, before, last="keep.txt")


def test_concurrent_agent_runs_and_parallel_calls_keep_their_own_steps(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    """Two agents at once, each making two calls in one turn: every effect lands under its
    own call, in its own run."""
    before = manifest(workspace)

    def agent(tag: str) -> FunctionAgent:
        first, second = (str(workspace / f"{tag}-{n}.txt") for n in (1, 2))
        script = [
            [
                ("write_text_async", {"path": first, "text": f"{tag} one\n"}),
                ("write_text", {"path": second, "text": f"{tag} two\n"}),
            ],
            "done",
        ]
        tools = [goex_function_tool(write_text_async), goex_function_tool(write_text)]
        return FunctionAgent(tools=tools, llm=scripted_llm(script))

    async def both() -> None:
        await asyncio.gather(agent("a").run("go"), agent("b").run("go"))

    asyncio.run(both())
    assert_runs_kept_apart(journal, handler.run_ids)
    for run_id in handler.run_ids:
        goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before


def test_a_multi_agent_workflow_with_a_handoff_rolls_back_whole(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    """AgentWorkflow: one run for both agents; the handoff changes nothing, so it does not
    stand in the rollback's way."""
    before = manifest(workspace)
    notes, report = str(workspace / "notes.txt"), str(workspace / "report.txt")
    writer = FunctionAgent(
        name="writer",
        description="writes reports",
        tools=[goex_function_tool(write_text)],
        llm=scripted_llm(
            [
                [("write_text", {"path": report, "text": "summary\n"})],
                [("handoff", {"to_agent": "appender", "reason": "notes are theirs"})],
            ]
        ),
        can_handoff_to=["appender"],
    )
    appender = FunctionAgent(
        name="appender",
        description="appends notes",
        tools=[reversible_function_tool(add_line, undo=drop_last_line)],
        llm=scripted_llm([[("add_line", {"path": notes, "line": "second line"})], "done"]),
    )
    assert run(AgentWorkflow(agents=[writer, appender], root_agent="writer")) == "done"
    assert len(handler.run_ids) == 1
    run_id = handler.run_ids[0]
    handoff = {"to_agent": "appender", "reason": "notes are theirs"}
    assert_tool_calls(
        journal,
        run_id,
        [
            ("write_text", Reversibility.CONTAINER, {"path": report, "text": "summary\n"}),
            ("handoff", Reversibility.NO_EFFECT, handoff),
            ("add_line", Reversibility.CONTAINER, {"path": notes, "line": "second line"}),
        ],
        leaves=["write_text", "add_line"],
    )
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before
    assert_compensated_once(journal, run_id)


@pytest.mark.filterwarnings("ignore:is_running called from within a step")  # ReActAgent's own
def test_a_react_agent_run_rolls_back(
    journal: Journal, handler: GoexSpanHandler, workspace: Path
) -> None:
    """ReActAgent: tool calls parsed from the model's text, journaled the same way."""
    before = manifest(workspace)
    report = str(workspace / "report.txt")
    call = json.dumps({"path": report, "text": "react\n"})
    script = [
        f"Thought: I need to write the report.\nAction: write_text\nAction Input: {call}",
        "Thought: I can answer without using any more tools.\nAnswer: done",
    ]
    agent = ReActAgent(tools=[goex_function_tool(write_text)], llm=scripted_llm(script))
    assert run(agent) == "done"
    (run_id,) = handler.run_ids
    assert_tool_calls(
        journal,
        run_id,
        [("write_text", Reversibility.CONTAINER, {"path": report, "text": "react\n"})],
        leaves=["write_text"],
    )
    assert (workspace / "report.txt").read_text() == "react\n"
    goex.rollback(run_id, journal=journal)
    assert manifest(workspace) == before
