"""A thread's checkpoints and the tool calls made after each, from the CLI (`goex show
--thread`, `goex rewind`) and a notebook (`notebook.thread`, `notebook.rewind`), over the
journal alone: no graph needed to look, or to bring the world back."""

from __future__ import annotations

import html
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_goex import GoexCallbackHandler, GoexToolkit
from langchain_goex.chat_models import ScriptedChatModel
from langgraph.checkpoint.memory import InMemorySaver

from goex_tools import notebook
from goex_tools.cli import main
from goex_tools.domains.fs import Workspace
from tests.integrations.conftest import manifest


@pytest.fixture
def conversation(sqlite_journal_url: str, workspace: Path, tmp_path: Path) -> dict[str, Any]:
    """Three calls writing a.txt, b.txt, c.txt, each after a pause (three runs of a thread)."""
    turns = [[("write_file", {"path": f"{n}.txt", "content": f"{n}\n"})] for n in "abc"]
    model = ScriptedChatModel(script=[*turns, "done"], replayable=True)
    files_tools = GoexToolkit(
        workspace=Workspace(workspace, store=tmp_path / "store", sandbox="none"), shell=False
    ).get_tools()
    agent = create_agent(
        model, files_tools, checkpointer=InMemorySaver(), interrupt_before=["tools"]
    )
    handler = GoexCallbackHandler(journal=sqlite_journal_url)
    config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
    files = {}  # the workspace after each number of calls
    given: Any = {"messages": [("user", "write three files")]}
    while True:
        files[sum(m.type == "tool" for m in agent.get_state(config).values.get("messages", []))] = (
            manifest(workspace)
        )
        state = agent.invoke(given, {**config, "callbacks": [handler]})
        given = None
        if not agent.get_state(config).next:
            break
    assert state["messages"][-1].content == "done" and len(handler.run_ids) == 3
    files[3] = manifest(workspace)
    history = list(agent.get_state_history(config))
    ran_after = [h for h in history if h.next == ("tools",)]  # newest first
    return {
        "agent": agent,
        "handler": handler,
        "thread": config["configurable"]["thread_id"],
        "url": sqlite_journal_url,
        "files": files,
        "ran_after": ran_after,
        "workspace": workspace,
    }


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_goex_show_thread_lists_its_checkpoints_with_the_calls_after_each(
    conversation: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    thread, url = conversation["thread"], conversation["url"]
    code, shown = cli_json(capsys, "show", "--thread", thread, "--journal", url)
    assert code == 0 and shown["thread"] == thread
    listed = shown["checkpoints"]
    expected = [h.config["configurable"]["checkpoint_id"] for h in conversation["ran_after"]]
    assert [c["checkpoint_id"] for c in listed] == expected  # newest first
    assert [c["calls"] for c in listed] == [1, 2, 3]
    assert [len(c["next_calls"]) for c in listed] == [1, 1, 1]
    assert [c["to_undo"] for c in listed] == [1, 2, 3]

    assert main(["show", "--thread", thread, "--journal", url]) == 0
    out = capsys.readouterr().out
    assert "write_file" in out and expected[0][:8] in out
    code, out = cli_json(capsys, "show", "--thread", "no-such-thread", "--journal", url)
    assert code == 2 and "no tool call of thread 'no-such-thread'" in out["error"]
    code, out = cli_json(capsys, "show", "--journal", url)
    assert code == 2 and "required" in out["error"]


def test_goex_rewind_brings_the_world_back_and_the_graph_resumes_there(
    conversation: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    thread, url, root = conversation["thread"], conversation["url"], conversation["workspace"]
    files, agent = conversation["files"], conversation["agent"]
    middle = conversation["ran_after"][1]  # before the second call: a.txt written
    checkpoint = middle.config["configurable"]["checkpoint_id"]
    base = ["rewind", "--thread", thread, "--checkpoint", checkpoint, "--journal", url]

    code, plan = cli_json(capsys, *base, "--dry-run")
    assert code == 0 and plan["dry_run"] and plan["complete"]
    assert [o["outcome"] for o in plan["outcomes"]] == ["would_compensate"] * 2
    assert manifest(root) == files[3]

    code, report = cli_json(capsys, *base)
    assert code == 0 and report["complete"] and len(report["outcomes"]) == 2
    assert manifest(root) == files[1]
    resume = report["config"]
    assert resume["configurable"]["checkpoint_id"] == checkpoint

    handler = conversation["handler"]
    agent.invoke(None, {**resume, "callbacks": [handler]})  # a.txt is there; b.txt again
    agent.invoke(None, {"configurable": {"thread_id": thread}, "callbacks": [handler]})
    assert manifest(root) == files[3]

    (root / "c.txt").write_text("a person's\n")
    first = conversation["ran_after"][-1].config["configurable"]["checkpoint_id"]
    code, stopped = cli_json(
        capsys, "rewind", "--thread", thread, "--checkpoint", first, "--journal", url
    )
    assert code == 1 and "before undoing anything" in stopped["error"]
    blocked = [o for o in stopped["report"]["outcomes"] if o["outcome"] == "conflict"]
    assert [o["tool"] for o in blocked] == ["write_file"]
    assert (root / "c.txt").read_text() == "a person's\n" and (root / "b.txt").exists()
    assert main(["rewind", "--thread", thread, "--checkpoint", first, "--journal", url]) == 1
    assert "before undoing anything" in capsys.readouterr().out


def test_notebook_shows_a_thread_and_rewinds_it(conversation: dict[str, Any]) -> None:
    thread, url, root = conversation["thread"], conversation["url"], conversation["workspace"]
    view = notebook.thread(thread, journal=url)
    assert [row[3] for row in view.rows()] == ["write_file"] * 3
    page = html.unescape(view._repr_html_())
    assert f"notebook.rewind('{thread}', CHECKPOINT, journal='{url}')" in page

    first = conversation["ran_after"][-1].config["configurable"]["checkpoint_id"]
    planned = notebook.rewind(thread, first, journal=url, dry_run=True)
    assert "would undo 3 step(s) of 3 run(s)" in planned.outcome()
    assert manifest(root) == conversation["files"][3]
    done = notebook.rewind(thread, first, journal=url)
    assert f"undid 3 step(s) of 3 run(s): the world as at checkpoint {first}" in done.outcome()
    assert manifest(root) == conversation["files"][0]
    assert [row[5] for row in done.rows()] == ["nothing left"] * 3
