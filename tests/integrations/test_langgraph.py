"""LangGraph-style loops journaled by `GoexCallbackHandler`: a graph built by hand (model node,
`ToolNode`, `tools_condition`) and LangGraph's prebuilt `create_react_agent` (the demo's loop
where `langchain` is not installed)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_goex import GoexCallbackHandler, goex_tool, reversible_tool
from langchain_goex.chat_models import ScriptedChatModel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent, tools_condition

from goex_tools import Journal, Reversibility
from tests.integrations.actions import append_line, drop_last_line, write_text
from tests.integrations.checks import (
    assert_tool_calls,
    assert_undo_last_then_rest,
)
from tests.integrations.conftest import manifest


def hand_built(model: ScriptedChatModel, tools: list[BaseTool], saver: Any = None) -> Any:
    bound = model.bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=saver)


def prebuilt(model: ScriptedChatModel, tools: list[BaseTool]) -> Any:
    return create_react_agent(model, tools)


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
@pytest.mark.parametrize("build", [hand_built, prebuilt], ids=["hand-built", "prebuilt"])
def test_graph_run_is_journaled_and_rolls_back(
    journal: Journal, workspace: Path, build: Callable[..., Any]
) -> None:
    before = manifest(workspace)
    notes, report = str(workspace / "notes.txt"), str(workspace / "report.txt")
    tools = [goex_tool(write_text), reversible_tool(append_line, undo=drop_last_line)]
    script = [
        [("write_text", {"path": report, "text": "summary\n"})],
        [("append_line", {"path": notes, "line": "second line"})],
        "done",
    ]
    handler = GoexCallbackHandler(journal=journal)
    run_id = uuid.uuid4()
    graph = build(ScriptedChatModel(script=script), tools)
    result = graph.invoke(
        {"messages": [("user", "go")]}, config={"callbacks": [handler], "run_id": run_id}
    )
    assert result["messages"][-1].content == "done"
    assert handler.run_ids == [str(run_id)]
    assert_tool_calls(
        journal,
        str(run_id),
        [
            ("write_text", Reversibility.CONTAINER, {"path": report, "text": "summary\n"}),
            ("append_line", Reversibility.CONTAINER, {"path": notes, "line": "second line"}),
        ],
        leaves=["write_text", "append_line"],
    )
    assert_undo_last_then_rest(journal, run_id, workspace, before, last="notes.txt")
