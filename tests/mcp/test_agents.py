"""Agent frameworks' own MCP clients over `goex mcp`: a LangChain agent loop through
`langchain-mcp-adapters` (stdio), a LlamaIndex agent through its MCP tool spec (streamable
HTTP); each run undone exactly by the review tools and by `goex rollback` elsewhere."""

from __future__ import annotations

import json
import os
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langchain_goex.chat_models import ScriptedChatModel
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.tools.goex.scripted import scripted_llm
from llama_index.tools.mcp import BasicMCPClient, McpToolSpec

from goex_tools import RunStatus, StepStatus
from tests.integrations.conftest import LLAMAINDEX_WARNINGS, load_demo
from tests.mcp.conftest import GOEX, calls, goex_cli, http_server, server_args

BAD_EDIT = ("edit_file", {"path": "config.toml", "old": "no such line", "new": "x"})


def script(world: Any) -> list[Any]:
    """The demo's turns, with a call that fails before the final answer."""
    turns = world.script()
    return [*turns[:-1], [BAD_EDIT], turns[-1]]


def rolled_back_elsewhere(world: Any, run_id: str) -> None:
    done = goex_cli("rollback", run_id, "--journal", world.journal.url, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["complete"], done.stdout + done.stderr


async def test_mcp_langchain_agent_loop_is_undone_exactly(world: Any) -> None:
    before = world.snapshot()
    connection = {
        "transport": "stdio",
        "command": GOEX[0],
        "args": [*GOEX[1:], *server_args(world)],
        "env": dict(os.environ),
    }
    client = MultiServerMCPClient({"goex": connection})  # type: ignore[dict-item]
    async with client.session("goex") as session:  # one session: one run
        tools = {tool.name: tool for tool in await load_mcp_tools(session)}
        agent = create_agent(ScriptedChatModel(script=script(world)), list(tools.values()))
        result = await agent.ainvoke({"messages": [("user", load_demo().TASK)]})
        answers = [m for m in result["messages"] if isinstance(m, ToolMessage)]
        assert [m.status for m in answers] == ["success"] * 7 + ["error"]
        assert "does not occur in config.toml" in str(answers[-1].content)  # the model reads it

        (run,) = world.journal.list_runs()
        top = [s for s in world.journal.steps(run.id) if s.parent_id is None]
        # a turn's calls run concurrently: their order in the journal may differ
        assert sorted(s.tool for s in top) == sorted(name for name, _ in [*calls(world), BAD_EDIT])
        assert [s.inputs["old"] for s in top if s.status is StepStatus.FAILED] == ["no such line"]

        # the review tool as the agent's own: undo the last effect (the deleted log)
        undo = await tools["goex_rollback"].ainvoke({"calls": 1, "dry_run": False})
        assert "undid 1 step(s)" in str(undo)
        assert (world.root / "old.log").read_text() == "2024-01-01 started\n" * 3
    assert world.journal.get_run(run.id).status is RunStatus.PARTIALLY_ROLLED_BACK
    rolled_back_elsewhere(world, run.id)  # the rest, from another process
    assert world.snapshot() == before


@LLAMAINDEX_WARNINGS[0]
@LLAMAINDEX_WARNINGS[1]
async def test_mcp_llamaindex_agent_is_undone_exactly(world: Any) -> None:
    """`BasicMCPClient` opens a session per call: the header keeps them in one run."""
    before = world.snapshot()
    with http_server(server_args(world)) as url:
        client = BasicMCPClient(url, headers={"Goex-Run-Id": "llama-agent"})
        tools = await McpToolSpec(client=client).to_tool_list_async()
        agent = FunctionAgent(tools=tools, llm=scripted_llm(script(world)))
        await agent.run(load_demo().TASK)

        top = [s for s in world.journal.steps("llama-agent") if s.parent_id is None]
        assert sorted(s.tool for s in top) == sorted(name for name, _ in [*calls(world), BAD_EDIT])
        failed = [s.inputs["old"] for s in top if s.status is StepStatus.FAILED]
        assert failed == ["no such line"]
        assert {s.status for s in top} == {StepStatus.APPLIED, StepStatus.FAILED}
        review = {tool.metadata.name: tool for tool in tools}["goex_review"]
        listed = (await review.acall()).raw_output.structuredContent
        assert [s["number"] for s in listed["steps"]][-2:] == ["7", "8"]
    rolled_back_elsewhere(world, "llama-agent")
    assert world.snapshot() == before
