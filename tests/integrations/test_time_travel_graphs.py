"""Every way of building a LangGraph graph with a checkpointer records where each tool call
ran, and rewinds with the world: a hand-built StateGraph (model node, ToolNode), LangGraph's
prebuilt agent, `create_agent`, and an agent as a subgraph of another graph (rewound to the
parent's checkpoints and to the subgraph's own)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import BaseTool
from langchain_goex import GoexCallbackHandler, goex_tool, reversible_tool, rewind
from langchain_goex.chat_models import ScriptedChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent

from goex_tools import Journal
from goex_tools.threads import place_of
from tests.integrations.actions import append_line, drop_last_line, write_text
from tests.integrations.conftest import manifest
from tests.integrations.test_langgraph import hand_built


def prebuilt(model: ScriptedChatModel, tools: list[BaseTool], saver: Any) -> Any:
    return create_react_agent(model, tools, checkpointer=saver)


def langchain_agent(model: ScriptedChatModel, tools: list[BaseTool], saver: Any) -> Any:
    return create_agent(model, tools, checkpointer=saver)


def subgraph(model: ScriptedChatModel, tools: list[BaseTool], saver: Any) -> Any:
    """The agent is the node `agent` of a parent graph; its checkpoints are its own."""
    parent = StateGraph(MessagesState)
    parent.add_node("agent", create_agent(model, tools))
    parent.add_edge(START, "agent")
    parent.add_edge("agent", END)
    return parent.compile(checkpointer=saver)


def after_calls(workspace: Path, tmp_path: Path, calls: int) -> Any:
    """The workspace as the script's first `calls` tool calls leave it (built apart): what
    it must be at a checkpoint whose state holds that many tool results."""
    copy = tmp_path / f"after-{calls}-{uuid.uuid4().hex[:6]}"
    copy.mkdir()
    (copy / "notes.txt").write_text("first line\n" + ("second line\n" if calls >= 2 else ""))
    (copy / "keep.txt").write_text("original\n")
    if calls >= 1:
        (copy / "report.txt").write_text("final\n" if calls >= 3 else "summary\n")
    for path in copy.iterdir():
        path.chmod((workspace / path.name).stat().st_mode if path.name != "report.txt" else 0o644)
    return manifest(copy)


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
@pytest.mark.parametrize(
    "build",
    [hand_built, prebuilt, langchain_agent, subgraph],
    ids=["hand-built", "prebuilt", "create_agent", "subgraph"],
)
def test_every_graph_with_a_checkpointer_rewinds_with_the_world(
    journal: Journal, workspace: Path, tmp_path: Path, build: Callable[..., Any]
) -> None:
    notes, report_file = str(workspace / "notes.txt"), str(workspace / "report.txt")
    tools = [goex_tool(write_text), reversible_tool(append_line, undo=drop_last_line)]
    script = [
        [("write_text", {"path": report_file, "text": "summary\n"})],
        [("append_line", {"path": notes, "line": "second line"})],
        [("write_text", {"path": report_file, "text": "final\n"})],
        "done",
    ]
    model = ScriptedChatModel(script=script, replayable=True)
    graph = build(model, tools, InMemorySaver())
    handler = GoexCallbackHandler(journal=journal)
    thread = uuid.uuid4().hex
    config: Any = {"configurable": {"thread_id": thread}}
    points: list[Any] = []  # the config of every checkpoint, root and subgraph, oldest first
    for _namespace, chunk in graph.stream(
        {"messages": [("user", "go")]},
        {**config, "callbacks": [handler]},
        stream_mode="checkpoints",
        subgraphs=True,
    ):
        points.append(chunk["config"])
    end = manifest(workspace)
    assert end == after_calls(workspace, tmp_path, 3)

    calls = [s for s in journal.steps(handler.last_run_id or "") if s.parent_id is None]
    assert [c.tool for c in calls] == ["write_text", "append_line", "write_text"]
    nested = build is subgraph
    for call in calls:
        place = place_of(call)
        assert place is not None and place.thread_id == thread
        assert place.checkpoint_id == place.checkpoints[place.checkpoint_ns]
        assert (place.checkpoint_ns != "") is nested
        assert len(place.checkpoints) == (2 if nested else 1)
    assert journal.get_run(handler.last_run_id or "").metadata["thread_id"] == thread

    for point in reversed(points[:-1]):  # each earlier checkpoint, newest first
        checkpoint_id = point["configurable"]["checkpoint_id"]
        report = rewind(graph, point, journal=journal)
        assert report.complete
        made = sum(m.type == "tool" for m in graph.get_state(point).values["messages"])
        assert manifest(workspace) == after_calls(workspace, tmp_path, made), checkpoint_id
        if point["configurable"]["checkpoint_ns"] == "":  # the root graph replays from it
            graph.invoke(None, {**report.config, "callbacks": [handler]})
            assert manifest(workspace) == end


def test_a_rewind_leaves_alone_another_graph_using_the_same_thread_id(
    journal: Journal, workspace: Path
) -> None:
    """Two agents, each with its own checkpointer, both call their conversation "1" and
    journal to one journal, taking turns: rewinding one leaves the other's files alone."""
    handler = GoexCallbackHandler(journal=journal)
    config: Any = {"configurable": {"thread_id": "1"}, "callbacks": [handler]}

    def agent(name: str) -> Any:
        write = [("write_text", {"path": str(workspace / f"{name}.txt"), "text": f"{name}\n"})]
        model = ScriptedChatModel(script=[write, "done", write, "done"], replayable=True)
        return create_agent(model, [goex_tool(write_text)], checkpointer=InMemorySaver())

    first, second = agent("first"), agent("second")
    start = manifest(workspace)
    first.invoke({"messages": [("user", "go")]}, config)
    second.invoke({"messages": [("user", "go")]}, config)
    first.invoke({"messages": [("user", "again")]}, config)
    second.invoke({"messages": [("user", "again")]}, config)
    assert len(handler.run_ids) == 4
    theirs = manifest(workspace)["second.txt"]

    oldest = list(first.get_state_history(config))[-1]
    plan = rewind(first, oldest.config, journal=journal, dry_run=True)
    assert len(plan.outcomes) == 2 and "another graph using the same thread id" in plan.notes[0]
    report = rewind(first, oldest.config, journal=journal)
    assert report.complete and len(report.compensated) == 2
    after = manifest(workspace)
    assert after.pop("second.txt") == theirs
    assert after == start
