"""A LlamaIndex workflow that waits for a person is saved (`ctx.to_dict()`) and resumed from
the saved `Context` in a new agent: the span handler ties its runs into one thread (the
`thread_id` instrument tag), `mark` names the moment it was saved, and `rewind` brings the
world back to that moment, so that resuming from the saved `Context` again reaches the same
end: files, every table row and the REST service."""

# No `from __future__ import annotations`: LlamaIndex finds a tool's `Context` parameter by
# its annotation object.

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent
from llama_index.tools.goex import GoexSpanHandler, GoexToolSpec, mark, rewind
from llama_index.tools.goex.scripted import scripted_llm
from llama_index_instrumentation.dispatcher import instrument_tags
from workflows.context.serializers import PickleSerializer

from goex_tools import RollbackFailed, notebook
from goex_tools.threads import place_of, thread_checkpoints
from tests.integrations.conftest import LLAMAINDEX_WARNINGS

pytestmark = LLAMAINDEX_WARNINGS
POINT = "asked to publish"


async def ask_to_publish(ctx: Context, what: str) -> str:
    """Ask a person whether to publish something; returns their answer."""
    answer = await ctx.wait_for_event(
        HumanResponseEvent, waiter_id=what, waiter_event=InputRequiredEvent(prefix=what)
    )
    return str(answer.response)


def script(world: Any) -> list[Any]:
    base = world.service.url
    return [
        [("write_file", {"path": "notes/sale.md", "content": "# Spring sale\n-20%\n"})],
        [("run_sql", {"sql": "UPDATE customers SET tier = 'gold' WHERE id = 2"})],
        [("ask_to_publish", {"what": "the spring sale"})],
        [("http_request", {"method": "POST", "url": f"{base}/items",
                           "body": {"name": "gift card", "price": 25}})],
        [("edit_file", {"path": "config.toml", "old": "debug = true", "new": "debug = false"})],
        "The sale is published.",
    ]  # fmt: skip


def new_agent(world: Any) -> FunctionAgent:
    """The agent as a new process builds it (the conversation lives in the saved Context)."""
    spec = GoexToolSpec(workspace=world.workspace, database=world.database, http=world.http)
    tools = [*spec.to_tool_list(), FunctionTool.from_defaults(async_fn=ask_to_publish)]
    return FunctionAgent(tools=tools, llm=scripted_llm(script(world), replayable=True))


@pytest.fixture
def handler(world: Any) -> Iterator[GoexSpanHandler]:
    asking = ["ask_to_publish"]  # it changes nothing: journaled as read-only, not irreversible
    installed = GoexSpanHandler(journal=world.journal, read_only_tools=asking).install()
    yield installed
    installed.uninstall()


async def until_asked(world: Any, thread: str) -> tuple[dict[str, Any], Any]:
    """Start the conversation; when the person is asked, save the Context, name the moment,
    and stop (the process ends). Returns the saved Context and the world then."""
    with instrument_tags({"thread_id": thread}):
        run = new_agent(world).run("open the spring sale")
        async for event in run.stream_events():
            if isinstance(event, InputRequiredEvent):
                assert run.ctx is not None
                saved = run.ctx.to_dict(serializer=PickleSerializer())  # the agent's memory
                mark(thread, POINT, journal=world.journal)
                seen = world.snapshot()
                await run.cancel_run()
                return saved, seen
    raise AssertionError("the agent never asked")


async def resume(world: Any, thread: str, saved: dict[str, Any]) -> str:
    """A new agent resumes from the saved Context, where the person's answer is awaited:
    they say yes."""
    with instrument_tags({"thread_id": thread}):
        agent = new_agent(world)
        run = agent.run(ctx=Context.from_dict(agent, saved, serializer=PickleSerializer()))
        assert run.ctx is not None
        run.ctx.send_event(HumanResponseEvent(response="yes"))
        return str(await asyncio.wait_for(run, 60))


def test_a_workflow_resumed_from_a_saved_context_rewinds_to_the_named_point(
    world: Any, handler: GoexSpanHandler
) -> None:
    thread = uuid.uuid4().hex
    saved, at_point = asyncio.run(until_asked(world, thread))
    assert at_point["tables"]["customers"][1] == (2, "Grace", "gold")
    assert asyncio.run(resume(world, thread, saved)) == "The sale is published."
    end = world.snapshot()
    assert end["service"][-1] == {"id": 3, "name": "gift card", "price": 25}

    runs = world.journal.find_runs(thread_id=thread)
    assert [r.metadata.get("point") for r in runs] == [None, POINT, None]
    calls = [s for r in runs for s in world.journal.steps(r.id) if s.parent_id is None]
    assert [c.tool for c in calls] == [
        "write_file",
        "run_sql",
        "ask_to_publish",
        "http_request",
        "edit_file",
    ]  # fmt: skip  (the paused ask left no step; it is journaled once, when answered)
    for call in calls:
        place = place_of(call)
        assert place is not None and place.thread_id == thread
        assert place.point == "BaseWorkflowAgent.call_tool"
    named = [c for c in thread_checkpoints(thread, journal=world.journal) if c.name == POINT]
    assert len(named) == 1 and named[0].calls == 3  # the ask, the POST, the edit
    view = notebook.thread(thread, journal=world.journal)  # what `goex show --thread` prints
    assert [row[1] for row in view.rows()] == [f"named {POINT!r}"]

    plan = rewind(thread, POINT, journal=world.journal, dry_run=True)
    assert [(o.tool, o.outcome) for o in plan.outcomes] == [
        ("edit_file", "would_compensate"),
        ("http_request", "would_compensate"),
    ]  # the ask changed nothing
    report = rewind(thread, POINT, journal=world.journal)
    assert report.complete and world.snapshot() == at_point

    assert asyncio.run(resume(world, thread, saved)) == "The sale is published."
    assert world.snapshot() == end

    (world.root / "config.toml").write_text("[shop]\nname = 'changed by a person'\n")
    changed = world.snapshot()
    with pytest.raises(RollbackFailed, match="before undoing anything") as stopped:
        rewind(thread, POINT, journal=world.journal)
    assert [(o.tool, o.outcome) for o in stopped.value.report.blocked] == [
        ("edit_file", "conflict")
    ]
    assert world.snapshot() == changed
    rewind(thread, POINT, journal=world.journal, force=True)
    assert world.snapshot() == at_point
