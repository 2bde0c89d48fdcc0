"""`goex_tools.notebook` over a real agent run: the table with diffs, rollback of the last N
steps or the whole run, a dry run, and a rollback that stops on a conflict (shown, not raised)."""

from __future__ import annotations

import uuid
from typing import Any

from langchain.agents import create_agent
from langchain_goex import GoexCallbackHandler, GoexToolkit, goex_tool
from langchain_goex.chat_models import ScriptedChatModel

from goex_tools import StepStatus, notebook


def agent_run(world: Any) -> uuid.UUID:
    """A LangChain agent edits a file, writes one, changes rows and posts to the service."""
    script = [
        [("edit_file", {"path": "config.toml", "old": "debug = true", "new": "debug = false"})],
        [("write_file", {"path": "notes/<plan>.md", "content": "# plan\n"})],
        [("run_sql", {"sql": "UPDATE customers SET tier = 'gold' WHERE id = 2"})],
        [("http_request", {"method": "POST", "url": f"{world.service.url}/items",
                           "body": {"name": "gift card", "price": 25}})],
        "done",
    ]  # fmt: skip
    tools = GoexToolkit(workspace=world.workspace, database=world.database, http=world.http)
    agent = create_agent(ScriptedChatModel(script=script), tools.get_tools())
    run_id = uuid.uuid4()
    handler = GoexCallbackHandler(journal=world.journal)
    agent.invoke({"messages": [("user", "go")]}, {"callbacks": [handler], "run_id": run_id})
    return run_id


def test_show_lists_each_effect_with_what_it_changed(world: Any) -> None:
    run_id = agent_run(world)
    view = notebook.show(run_id, journal=world.journal)  # the LangChain UUID names the run
    rows = view.rows()
    assert [(r[1].strip(), r[2], r[3]) for r in rows] == [
        ("edit_file", "fs", "applied"),
        ("write_file", "fs", "applied"),
        ("run_sql", "sql", "applied"),
        ("http_request", "http", "applied"),
    ]
    assert [r[4] for r in rows] == [
        "modified config.toml",
        "added notes, added notes/<plan>.md",
        "customers: 1 updated",
        "POST /items -> 201",
    ]
    assert [r[0] for r in rows] == ["1", "2", "3", "4"]  # the tool calls, as steps=N counts
    assert all(r[5] != "-" for r in rows)  # every effect says how it is undone
    text = repr(view)
    assert "-debug = true\n+debug = false" in text and "+++ b/notes/<plan>.md" in text
    # the rows a SQL step changed, before and after, as a confirm callback sees them
    assert "#3 run_sql (applied)\ncustomers: 1 updated\n" in text
    assert "- {'id': 2, 'name': 'Grace', 'tier': 'silver'}" in text
    assert "+ {'id': 2, 'name': 'Grace', 'tier': 'gold'}" in text
    page = view._repr_html_()
    assert "notes/&lt;plan&gt;.md" in page and "<plan>" not in page
    journal = repr(world.journal.url)
    assert f"notebook.rollback({str(run_id)!r}, steps=N, journal={journal})" in page
    assert view.outcome() == ""


def test_show_numbers_a_call_with_several_effects_as_one(world: Any) -> None:
    """A goex tool whose sub-agent made two effects is one call: its effects are 2.1, 2.2."""
    writes = [
        [("write_file", {"path": "a.md", "content": "a\n"})],
        [("write_file", {"path": "b.md", "content": "b\n"})],
        "ok",
    ]
    files = GoexToolkit(workspace=world.workspace).get_tools()
    writer = create_agent(ScriptedChatModel(script=writes), files)

    def ask_writer(task: str) -> str:
        """Hand a writing task to the writer agent."""
        answer: str = writer.invoke({"messages": [("user", task)]})["messages"][-1].content
        return answer

    script = [
        [("edit_file", {"path": "config.toml", "old": "debug = true", "new": "debug = false"})],
        [("ask_writer", {"task": "write a.md and b.md"})],
        "done",
    ]
    agent = create_agent(ScriptedChatModel(script=script), [*files, goex_tool(ask_writer)])
    handler = GoexCallbackHandler(journal=world.journal)
    agent.invoke({"messages": [("user", "go")]}, {"callbacks": [handler]})
    (run_id,) = handler.run_ids
    rows = notebook.show(run_id, journal=world.journal).rows()
    assert [(r[0], r[1].strip()) for r in rows] == [
        ("1", "edit_file"),
        ("2.1", "write_file"),
        ("2.2", "write_file"),
    ]


def test_rollback_last_steps_then_the_rest(world: Any) -> None:
    before = world.snapshot()
    run_id = agent_run(world)
    after = world.snapshot()

    dry = notebook.rollback(run_id, steps=2, journal=world.journal, dry_run=True)
    assert dry.outcome() == "would undo 2 step(s) in this rollback; 0 of the run's 4 effect(s) "\
        "undone so far"  # fmt: skip
    assert world.snapshot() == after

    last = notebook.rollback(run_id, steps=1, journal=world.journal)
    assert last.outcome() == "undid 1 step(s) in this rollback; 1 of the run's 4 effect(s) "\
        "undone so far"  # fmt: skip
    assert world.snapshot() == {**after, "service": before["service"]}
    assert [r[3] for r in last.rows()] == ["applied"] * 3 + ["compensated"]

    rest = notebook.rollback(run_id, journal=world.journal)
    assert rest.outcome() == "undid 3 step(s) in this rollback; 4 of the run's 4 effect(s) "\
        "undone so far"  # fmt: skip
    assert world.snapshot() == before
    again = notebook.rollback(run_id, journal=world.journal)
    assert again.outcome() == "undid 0 step(s): nothing left to undo (4 of the run's 4 "\
        "effect(s) undone so far)"  # fmt: skip


def test_a_rollback_stopped_by_a_conflict_is_shown_and_can_resume(world: Any) -> None:
    before = world.snapshot()
    run_id = agent_run(world)
    config = world.root / "config.toml"
    edited = config.read_text()
    config.write_text(edited + "# changed by someone else\n")

    view = notebook.rollback(run_id, journal=world.journal)  # newest first: the edit is last
    assert view.error is not None and "conflict" in view.error
    outcome = view.outcome()
    assert outcome.startswith("rollback stopped at step ") and "(edit_file)" in outcome
    assert outcome.endswith("(undid 3 step(s) before; 3 of the run's 4 effect(s) undone so far)")
    statuses = {s.tool: s.status for s in world.journal.steps(str(run_id)) if s.parent_id}
    assert statuses["edit_file"] is StepStatus.COMPENSATION_FAILED  # left as it is, resumable
    assert view.rows()[0][3].startswith("compensation_failed: ")
    assert config.read_text().endswith("# changed by someone else\n")

    config.write_text(edited)  # the other change is put aside: the rollback resumes
    assert notebook.rollback(run_id, journal=world.journal).error is None
    assert world.snapshot() == before
