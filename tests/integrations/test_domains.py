"""Agents of both frameworks over the real domain tools: files (and a sandboxed shell), an
SQLite database and a local HTTP service; rollback of the last step and of the whole run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_goex import GoexCallbackHandler, GoexToolkit
from langchain_goex.chat_models import ScriptedChatModel
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.tools.goex import GoexSpanHandler, GoexToolSpec
from llama_index.tools.goex.scripted import scripted_llm

import goex_tools as goex
from goex_tools import StepStatus
from tests.integrations.conftest import LLAMAINDEX_WARNINGS

pytestmark = LLAMAINDEX_WARNINGS

Runner = Callable[[Any, list[Any]], str]


def with_langchain(world: Any, script: list[Any]) -> str:
    tools = GoexToolkit(workspace=world.workspace, database=world.database, http=world.http)
    agent = create_agent(ScriptedChatModel(script=script), tools.get_tools())
    run_id = str(uuid.uuid4())
    handler = GoexCallbackHandler(journal=world.journal)
    agent.invoke(
        {"messages": [("user", "prepare the sale")]},
        config={"callbacks": [handler], "run_id": run_id},
    )
    assert handler.run_ids == [run_id]
    return run_id


def with_llamaindex(world: Any, script: list[Any]) -> str:
    spec = GoexToolSpec(workspace=world.workspace, database=world.database, http=world.http)
    agent = FunctionAgent(tools=spec.to_tool_list(), llm=scripted_llm(script))
    handler = GoexSpanHandler(journal=world.journal).install()

    async def go() -> None:
        await agent.run("prepare the sale")

    try:
        asyncio.run(go())
    finally:
        handler.uninstall()
    assert len(handler.run_ids) == 1
    return handler.run_ids[0]


both_frameworks = pytest.mark.parametrize(
    "runner", [with_langchain, with_llamaindex], ids=["langchain", "llamaindex"]
)


def one_call_per_turn(script: list[Any]) -> list[Any]:
    """Calls of one turn may run in parallel; one per turn fixes the journal's order."""
    return [[call] for turn in script[:-1] for call in turn] + [script[-1]]


@both_frameworks
def test_agent_over_files_database_and_service_rolls_back(world: Any, runner: Runner) -> None:
    before = world.snapshot()
    run_id = runner(world, one_call_per_turn(world.script()))
    after = world.snapshot()
    assert after["files"] != before["files"]
    assert after["tables"]["customers"] == [(1, "Ada", "silver"), (2, "Grace", "gold")]
    assert after["tables"]["orders"] == [(1, 1, "paid"), (3, 2, "paid")]
    assert after["service"] == [
        {"id": 2, "name": "pen", "price": 3},
        {"id": 3, "name": "gift card", "price": 25},
    ]
    effects = [s for s in world.journal.steps(run_id) if s.parent_id]
    assert [(s.tool, s.domain, s.status) for s in effects] == [
        ("write_file", "fs", StepStatus.APPLIED),
        ("edit_file", "fs", StepStatus.APPLIED),
        ("run_shell", "fs", StepStatus.APPLIED),
        ("run_sql", "sql", StepStatus.APPLIED),
        ("http_request", "http", StepStatus.APPLIED),
        ("http_request", "http", StepStatus.APPLIED),
        ("delete_path", "fs", StepStatus.APPLIED),
    ]
    assert effects[3].effect["tables"] == {
        "customers": {"inserted": 0, "updated": 1, "deleted": 0},
        "orders": {"inserted": 0, "updated": 0, "deleted": 2},
    }
    assert effects[4].effect["predicted"]["method"] == "POST"

    goex.rollback(run_id, steps=1, journal=world.journal)  # brings old.log back, only
    undone_last = world.snapshot()
    assert undone_last["files"] == {**after["files"], "old.log": before["files"]["old.log"]}
    assert (undone_last["tables"], undone_last["service"]) == (after["tables"], after["service"])

    goex.rollback(run_id, journal=world.journal)
    assert world.snapshot() == before
    assert {s.status for s in world.journal.steps(run_id) if s.parent_id} == {
        StepStatus.COMPENSATED
    }


@both_frameworks
def test_failing_domain_calls_are_journaled_failed_and_not_undone(
    world: Any, runner: Runner
) -> None:
    before = world.snapshot()
    base = world.service.url
    script = [
        [("write_file", {"path": "draft.md", "content": "draft\n"})],
        [("http_request", {"method": "DELETE", "url": f"{base}/items/99"})],  # 404
        [("edit_file", {"path": "config.toml", "old": "no such text", "new": "x"})],
        [("run_sql", {"sql": "DELETE FROM no_such_table"})],
        "gave up",
    ]
    run_id = runner(world, script)
    steps = world.journal.steps(run_id)
    top = [(s.tool, s.status) for s in steps if s.parent_id is None]
    assert top == [
        ("write_file", StepStatus.APPLIED),
        ("http_request", StepStatus.FAILED),
        ("edit_file", StepStatus.FAILED),
        ("run_sql", StepStatus.FAILED),
    ]
    leaves = [(s.tool, s.status) for s in steps if s.parent_id]
    assert leaves == [
        ("write_file", StepStatus.APPLIED),
        ("http_request", StepStatus.FAILED),  # sent, answered 404: journaled, then failed
        ("run_sql", StepStatus.FAILED),  # ran in a transaction that was rolled back
    ]  # edit_file refused its input before journaling anything: only the call failed
    report = goex.rollback(run_id, journal=world.journal)
    assert len(report.compensated) == 1
    assert world.snapshot() == before
    for step in steps:
        if step.status is StepStatus.FAILED:
            assert [e.status for e in world.journal.events(step.id)][-1] is StepStatus.FAILED
