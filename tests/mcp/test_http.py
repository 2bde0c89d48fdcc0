"""`goex mcp --transport http`, driven by the MCP SDK's streamable HTTP client: a run per
session (or per id the client gives), undone exactly by `goex rollback` in another process;
the policy given on the command line, its `ask` answered by elicitation or the approver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import types

from goex_tools import RunStatus, StepStatus, rollback
from goex_tools.mcp import RUN_ID_META
from tests.integrations.conftest import load_demo
from tests.mcp.conftest import (
    call,
    goex_cli,
    http_server,
    http_session,
    run_of,
    server_args,
    step_of,
    text,
)

POLICY = """\
default: allow
fs:
  rules:
    - {name: private, paths: ["private/**"], decision: refuse}
    - {name: notes, paths: ["notes/**"], decision: ask}
"""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, str]]:
    """One world and one server for the module; each test undoes what it did."""
    world = load_demo().DemoWorld()
    rules = [rule.model_dump(mode="json", exclude_defaults=True) for rule in world.rules.rules]
    world.rules_file = world.dir / "rules.json"
    world.rules_file.write_text(json.dumps(rules))  # the bare list form of --http
    policy = world.dir / "policy.yaml"
    policy.write_text(POLICY)
    args = server_args(
        world, "--policy", str(policy), "--approver", "tests.mcp.approvers:approve_all"
    )
    with http_server(args) as url:
        yield world, url
    world.close()


async def ended(world: Any, run_id: str) -> RunStatus:
    """The run's status once its sessions are over (the server sees a closed session soon
    after the client leaves)."""
    for _ in range(100):
        status = world.journal.get_run(run_id).status
        if status is not RunStatus.ACTIVE:
            return status
        await asyncio.sleep(0.05)
    return status


def rollback_elsewhere(world: Any, run_id: str) -> dict[str, Any]:
    done = goex_cli("rollback", run_id, "--journal", world.journal.url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def test_mcp_http_runs_per_session_are_undone_by_goex_rollback(
    served: tuple[Any, str],
) -> None:
    world, url = served
    before = world.snapshot()
    item = {"method": "POST", "url": f"{world.service.url}/items", "body": {"name": "x"}}
    async with http_session(url) as a, http_session(url) as b:
        a1 = await call(a, "write_file", {"path": "a.txt", "content": "from a\n"})
        b1 = await call(b, "run_sql", {"sql": "UPDATE customers SET tier = 'gold'"})
        a2 = await call(a, "http_request", item)
        b2 = await call(b, "edit_file", {"path": "config.toml", "old": "true", "new": "false"})
        assert run_of(a1) == run_of(a2) != run_of(b1) == run_of(b2)
        assert world.journal.get_run(run_of(a1)).status is RunStatus.ACTIVE
    for run_id in (run_of(a1), run_of(b1)):
        assert await ended(world, run_id) is RunStatus.COMPLETED
        assert rollback_elsewhere(world, run_id)["complete"]
        assert world.journal.get_run(run_id).status is RunStatus.ROLLED_BACK
    assert world.snapshot() == before


async def test_mcp_http_client_given_run_ids_gather_sessions(served: tuple[Any, str]) -> None:
    """Clients that open a session per call (LlamaIndex's) keep one run with a header; a
    call's `_meta` names a run too, and wins."""
    world, url = served
    before = world.snapshot()
    header = {"Goex-Run-Id": "shared-by-header"}
    for n in (1, 2):
        async with http_session(url, headers=header) as session:
            result = await call(session, "write_file", {"path": f"h{n}.txt", "content": "h\n"})
            assert run_of(result) == "shared-by-header"
    async with http_session(url, headers=header) as session:
        named = await session.call_tool(
            "make_dir", {"path": "m"}, meta={RUN_ID_META: "named-in-meta"}
        )
        assert run_of(named) == "named-in-meta"
    shared = [s for s in world.journal.steps("shared-by-header") if s.parent_id is None]
    assert [s.inputs["path"] for s in shared] == ["h1.txt", "h2.txt"]
    for run_id in ("shared-by-header", "named-in-meta"):
        await ended(world, run_id)
        assert rollback(run_id, journal=world.journal).complete
    assert world.snapshot() == before


async def test_mcp_http_policy_refuses_and_asks_by_elicitation_first(
    served: tuple[Any, str],
) -> None:
    world, url = served
    before = world.snapshot()
    asked: list[str] = []

    async def decline(_: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": False})

    async with http_session(url) as plain, http_session(url, elicitation_callback=decline) as asks:
        refused = await plain.call_tool("write_file", {"path": "private/k", "content": "k"})
        assert refused.isError
        assert "write_file refused by rule 'private'" in text(refused)

        # no elicitation here: the approver given with --approver answers
        approved = await call(plain, "write_file", {"path": "notes/ok.md", "content": "ok\n"})
        # elicitation there: the client's user answers, and says no
        declined = await asks.call_tool("write_file", {"path": "notes/no.md", "content": "no"})
        assert declined.isError and "refused by the MCP client's user" in text(declined)
        assert len(asked) == 1 and "notes/no.md" in asked[0]

    assert not (world.root / "private").exists() and not (world.root / "notes/no.md").exists()
    effects = {s.tool + ":" + s.status.value: s for s in _children(world, refused, declined)}
    assert set(effects) == {"write_file:refused"}
    (effect,) = _children(world, approved)
    assert effect.status is StepStatus.APPLIED and effect.decision is not None
    assert effect.decision.approved_by == "approve_all"
    for run_id in {run_of(approved), run_of(declined)}:
        await ended(world, run_id)
        assert rollback(run_id, journal=world.journal).complete
    assert world.snapshot() == before


def test_mcp_http_refuses_requests_from_pages_elsewhere(served: tuple[Any, str]) -> None:
    """A web page's script (DNS rebinding, or a cross-site request) must not drive the tools."""
    world, url = served
    before = world.snapshot()
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "page", "version": "1"}}}  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream"}
    for headers, status in [
        ({"Host": "evil.example"}, 421),
        ({"Origin": "http://evil.example"}, 403),
    ]:
        answer = httpx.post(url, json=initialize, headers={**accept, **headers})
        assert answer.status_code == status
    assert httpx.post(url, json=initialize, headers=accept).status_code == 200
    assert world.snapshot() == before


def _children(world: Any, *results: types.CallToolResult) -> list[Any]:
    steps = [s for r in results for s in world.journal.steps(run_of(r))]
    return [s for s in steps if s.parent_id in {step_of(r) for r in results}]
