"""`goex mcp` over stdio, driven by the MCP SDK's own client: every call journaled in the
session's run, and undone exactly by the review tools, resources and prompts it offers."""

from __future__ import annotations

import json
from typing import Any

from goex_tools import Reversibility, RunStatus, StepStatus
from tests.mcp.conftest import (
    call,
    calls,
    run_of,
    server_args,
    stdio_session,
    step_of,
    text,
)

DOMAIN_TOOLS = [
    "read_file", "write_file", "edit_file", "delete_path", "move_path", "make_dir",
    "run_shell", "run_sql", "http_request",
]  # fmt: skip


ASK_CONFIG = "default: allow\nfs:\n  rules:\n    - {paths: [config.toml], decision: ask}\n"


async def test_mcp_stdio_calls_are_undone_exactly_by_the_review_tools(world: Any) -> None:
    before = world.snapshot()
    policy = world.dir / "policy.yaml"
    policy.write_text(ASK_CONFIG)  # its approver prints and reads stdin: not the protocol's
    extra = ["--policy", str(policy), "--approver", "tests.mcp.approvers:approve_loudly"]
    async with stdio_session(server_args(world, *extra)) as session:
        listed = [t.name for t in (await session.list_tools()).tools]
        assert listed == [*DOMAIN_TOOLS, "goex_review", "goex_rollback"]

        states, results = [before], []
        for tool, arguments in calls(world):
            results.append(await call(session, tool, arguments))
            states.append(world.snapshot())
        assert len({run_of(r) for r in results}) == 1
        run_id = run_of(results[0])

        # one container step per call, its domain effect journaled under it
        steps = world.journal.steps(run_id)
        top = [s for s in steps if s.parent_id is None]
        assert [s.id for s in top] == [step_of(r) for r in results]
        assert {s.reversibility for s in top} == {Reversibility.CONTAINER}
        assert [s.tool for s in top] == [tool for tool, _ in calls(world)]
        children = [s for s in steps if s.parent_id is not None]
        assert [s.parent_id for s in children] == [s.id for s in top]
        assert {s.status for s in steps} == {StepStatus.APPLIED}
        assert world.journal.get_run(run_id).metadata["framework"] == "mcp"

        review = (await call(session, "goex_review", {})).structuredContent
        assert review is not None
        assert [s["number"] for s in review["steps"]] == [str(n) for n in range(1, 8)]
        changed = {s["tool"]: s["changed"] for s in review["steps"]}
        assert changed["write_file"] == "added notes, added notes/sale.md"
        assert changed["run_sql"] == "customers: 1 updated; orders: 2 deleted"
        assert "-TODO: spring sale" in review["text"]

        # the same review as a resource, and as a prompt
        resource = await session.read_resource("goex://session/steps")  # type: ignore[arg-type]
        assert json.loads(resource.contents[0].text)["steps"] == review["steps"]  # type: ignore[union-attr]
        prompt = await session.get_prompt("review_changes")
        assert "-TODO: spring sale" in prompt.messages[0].content.text  # type: ignore[union-attr]
        undo_prompt = await session.get_prompt("undo_last", {"calls": "2"})
        assert "calls=2 and dry_run=true" in undo_prompt.messages[0].content.text  # type: ignore[union-attr]

        # a dry run changes nothing; then the last two calls are undone, exactly
        dry = await call(session, "goex_rollback", {"calls": 2})
        assert world.snapshot() == states[-1]
        assert "would undo 2 step(s)" in text(dry)
        undone = await call(session, "goex_rollback", {"calls": 2, "dry_run": False})
        assert world.snapshot() == states[-3]
        assert undone.structuredContent is not None and undone.structuredContent["complete"]
        assert world.journal.get_run(run_id).status is RunStatus.PARTIALLY_ROLLED_BACK

        # the run is closed now: the next call goes to a new run that says what it follows
        later = await call(session, "write_file", {"path": "after.txt", "content": "later\n"})
        assert run_of(later) != run_id
        assert world.journal.get_run(run_of(later)).metadata["follows"] == run_id

        # the rest of the first run, then the new one: everything is as it was
        await call(session, "goex_rollback", {"whole_run": True, "dry_run": False,
                                              "run_id": run_id})  # fmt: skip
        await call(session, "goex_rollback", {"whole_run": True, "dry_run": False})
        assert world.snapshot() == before
        assert world.journal.get_run(run_id).status is RunStatus.ROLLED_BACK
