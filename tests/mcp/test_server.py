"""The MCP server's guarantees under hostile or odd input, through the SDK's client over
the SDK's in-memory transport (the same protocol messages, without a process to start)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import ClientSession, types
from mcp.shared.exceptions import McpError
from mcp.shared.memory import create_connected_server_and_client_session

from goex_tools import Journal, RunStatus, StepStatus, rollback
from goex_tools.cli import main
from goex_tools.domains.http import HttpTool
from goex_tools.mcp import RUN_ID_META
from goex_tools.mcp.server import build_server
from goex_tools.policy import Policy, parse_policy
from tests.http.conftest import TOKEN, registered_rules
from tests.http.service import Service
from tests.integrations.conftest import REPO
from tests.mcp.conftest import call, run_of, step_of, text


@asynccontextmanager
async def connected(server: Any, **client: Any) -> AsyncIterator[ClientSession]:
    async with create_connected_server_and_client_session(server, **client) as session:
        yield session


def served(world: Any, **options: Any) -> Any:
    return build_server(
        workspace=world.workspace,
        databases=[world.database],
        http=world.http,
        journal=world.journal,
        **options,
    )


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Service]:
    """The token-protected CRUD service; its token is `{{secret:items}}` for 127.0.0.1."""
    monkeypatch.setenv("GOEX_SECRET_ITEMS", TOKEN)
    monkeypatch.setenv("GOEX_SECRET_ITEMS_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    running = Service(token=TOKEN).start()
    yield running
    running.stop()


async def test_mcp_secret_values_never_reach_the_model_or_the_journal(
    service: Service, sqlite_journal_url: str
) -> None:
    journal = Journal(sqlite_journal_url)
    server = build_server(http=HttpTool(registered_rules(service.url)), journal=journal)
    auth = [{"name": "Authorization", "value": "Bearer {{secret:items}}"}]
    async with connected(server) as session:

        async def send(method: str, url: str, **body: Any) -> types.CallToolResult:
            arguments = {"method": method, "url": url, "headers": auth, **body}
            return await session.call_tool("http_request", arguments)

        created = await send("POST", f"{service.url}/items", body={"name": "pen"})
        echoed = await send("POST", f"{service.url}/echo?echo_headers=1")
        failed = await send("POST", f"{service.url}/echo?status=500")
        elsewhere = await send("GET", f"http://localhost:{service.port}/echo")
    seen = [r.model_dump_json() for r in (created, echoed, failed, elsewhere)]
    assert not created.isError and not echoed.isError and failed.isError
    assert service.state.echoed[0]["headers"]["authorization"] == f"Bearer {TOKEN}"  # it was sent
    assert elsewhere.isError and "bound to 127.0.0.1, not to localhost" in text(elsewhere)
    assert len(service.state.echoed) == 2  # nothing went to a host the secret is not bound to
    journaled = [s.model_dump_json() for s in journal.steps(run_of(created))]
    for shown in seen + journaled:
        assert TOKEN not in shown
    assert "Bearer [REDACTED]" in text(echoed)
    rollback(run_of(created), journal=journal, on_irreversible="skip")  # /echo has no undo
    assert service.state.dump()["items"] == []


async def test_mcp_a_call_into_a_closed_run_is_refused_and_changes_nothing(world: Any) -> None:
    async with connected(served(world)) as session:
        first = await session.call_tool(
            "write_file", {"path": "a.txt", "content": "a"}, meta={RUN_ID_META: "given"}
        )
        rollback("given", journal=world.journal, live=True)  # as `goex rollback --live` does
        before = world.snapshot()
        again = await session.call_tool(
            "write_file", {"path": "b.txt", "content": "b"}, meta={RUN_ID_META: "given"}
        )
        assert again.isError and "run given is rolled_back" in text(again)
        assert world.snapshot() == before
        too_long = await session.call_tool("make_dir", {"path": "d"}, meta={RUN_ID_META: "x" * 65})
        assert too_long.isError and "run id" in text(too_long)
        assert world.snapshot() == before
    assert [s.inputs for s in world.journal.steps("given") if s.parent_id is None] == [
        {"path": "a.txt", "content": "a"}
    ]
    assert not first.isError


async def test_mcp_review_tools_reach_only_the_sessions_own_runs(world: Any) -> None:
    server = served(world)
    async with connected(server) as mine, connected(server) as theirs:
        nothing = await mine.call_tool("goex_review", {})
        assert nothing.isError and "no tool call yet" in text(nothing)
        other = await call(theirs, "write_file", {"path": "theirs.txt", "content": "t"})
        for tool, arguments in [
            ("goex_review", {"run_id": run_of(other)}),
            ("goex_rollback", {"whole_run": True, "dry_run": False, "run_id": run_of(other)}),
        ]:
            refused = await mine.call_tool(tool, arguments)
            assert refused.isError and "not one this session's" in text(refused)
        with pytest.raises(McpError, match="not one this session's"):
            await mine.read_resource(f"goex://runs/{run_of(other)}/steps")  # type: ignore[arg-type]
    assert (world.root / "theirs.txt").read_text() == "t"
    assert world.journal.get_run(run_of(other)).status is RunStatus.COMPLETED


async def test_mcp_rollback_waits_for_no_call_it_would_race(world: Any) -> None:
    """A rollback while a call of the run still runs undoes nothing and says why."""
    before = world.snapshot()
    async with connected(served(world)) as session:
        first = await call(session, "write_file", {"path": "a.txt", "content": "a"})
        slow = asyncio.create_task(
            session.call_tool("run_shell", {"command": "sleep 1; echo done > slow.txt"})
        )
        while not [s for s in world.journal.steps(run_of(first)) if s.tool == "run_shell"]:
            await asyncio.sleep(0.02)
        early = await session.call_tool("goex_rollback", {"whole_run": True, "dry_run": False})
        assert early.isError and "still running (run_shell)" in text(early)
        assert world.journal.get_run(run_of(first)).status is RunStatus.ACTIVE
        assert not (await slow).isError
        await call(session, "goex_rollback", {"whole_run": True, "dry_run": False})
    assert world.snapshot() == before


async def test_mcp_a_failed_call_reads_as_an_error_and_changes_nothing(world: Any) -> None:
    before = world.snapshot()
    async with connected(served(world)) as session:
        result = await session.call_tool(
            "edit_file", {"path": "config.toml", "old": "no such text", "new": "x"}
        )
        outside = await session.call_tool("write_file", {"path": "../escape", "content": "x"})
    assert result.isError and "does not occur in config.toml" in text(result)
    assert outside.isError and "does not name a path inside" in text(outside)
    assert world.snapshot() == before
    assert not (world.dir / "escape").exists()
    call_step = world.journal.get_step(step_of(result))
    assert call_step.status is StepStatus.FAILED


POLICY = "default: allow\nfs:\n  rules:\n    - {paths: ['notes/**'], decision: ask}\n"


async def test_mcp_ask_is_elicited_else_the_approver_else_refused(world: Any) -> None:
    source = parse_policy(POLICY)

    async def approve(_: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert "notes/a.md" in params.message
        return types.ElicitResult(action="accept", content={"approve": True})

    async def cancel(_: Any, __: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="cancel")

    nobody = served(world, policy=Policy(source))
    async with connected(nobody, elicitation_callback=approve) as asks:
        approved = await call(asks, "write_file", {"path": "notes/a.md", "content": "a"})
    async with connected(nobody, elicitation_callback=cancel) as asks:
        cancelled = await asks.call_tool("write_file", {"path": "notes/c.md", "content": "c"})
    async with connected(nobody) as plain:
        unasked = await plain.call_tool("write_file", {"path": "notes/b.md", "content": "b"})
    deputy = served(world, policy=Policy(source, approver=lambda request: True))
    async with connected(deputy) as plain:
        by_approver = await call(plain, "write_file", {"path": "notes/d.md", "content": "d"})

    assert cancelled.isError and "refused by the MCP client's user" in text(cancelled)
    assert unasked.isError and "no approver is set" in text(unasked)
    assert sorted(p.name for p in (world.root / "notes").iterdir()) == ["a.md", "d.md"]
    decisions = {}
    for result in (approved, by_approver):
        (effect,) = [s for s in world.journal.steps(run_of(result)) if s.parent_id]
        decisions[effect.inputs["path"]] = effect.decision and effect.decision.approved_by
    assert decisions == {
        "notes/a.md": "the MCP client's user (elicitation)",
        "notes/d.md": "<lambda>",
    }


async def test_mcp_several_databases_get_a_tool_each(world: Any, tmp_path: Any) -> None:
    other = f"sqlite:///{tmp_path}/billing.db"
    server = build_server(databases=[world.database, other], journal=world.journal)
    async with connected(server) as session:
        names = [t.name for t in (await session.list_tools()).tools]
        assert names == ["shop_run_sql", "billing_run_sql", "goex_review", "goex_rollback"]
        await call(session, "billing_run_sql", {"sql": "CREATE TABLE t (x INTEGER)"})
        await call(session, "shop_run_sql", {"sql": "DELETE FROM orders"})
        listing = await call(session, "billing_run_sql", {"sql": "SELECT name FROM sqlite_master"})
    assert "orders" not in text(listing) and '"t"' in text(listing)


async def test_mcp_rollback_to_a_call_keeps_that_call_and_undoes_the_later(world: Any) -> None:
    """`to_step` names a tool call (the step id in its result's `_meta`): that call stays,
    though its effect is journaled after it; every later call is undone."""
    async with connected(served(world)) as session:
        first = await call(session, "write_file", {"path": "a.txt", "content": "a"})
        kept = world.snapshot()
        await call(session, "write_file", {"path": "b.txt", "content": "b"})
        await call(session, "run_sql", {"sql": "DELETE FROM orders"})
        arguments = {"to_step": step_of(first), "dry_run": False}
        undone = await call(session, "goex_rollback", arguments)
    assert world.snapshot() == kept
    assert "undid 2 step(s)" in text(undone)


async def test_mcp_rollback_asks_the_person_first_where_the_client_can(world: Any) -> None:
    before = world.snapshot()
    shown: list[str] = []
    answers = iter([False, True])

    async def person(_: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        shown.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": next(answers)})

    async with connected(served(world), elicitation_callback=person) as session:
        await call(session, "write_file", {"path": "a.txt", "content": "a"})
        await call(session, "run_sql", {"sql": "DELETE FROM orders"})
        whole = {"whole_run": True, "dry_run": False}
        declined = await call(session, "goex_rollback", whole)
        assert "declined: nothing was undone" in text(declined)
        assert world.snapshot() != before
        await call(session, "goex_rollback", whole)
    assert world.snapshot() == before
    assert "would undo 2 step(s)" in shown[0] and "- run_sql:" in shown[0]
    assert shown[0].endswith("Undo these steps now?") and len(shown) == 2


def test_readme_mcp_client_configuration_is_a_goex_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```json\n(\{\n  \"mcpServers\".*?)```", readme, re.DOTALL)
    assert block is not None
    server = json.loads(block.group(1))["mcpServers"]["goex"]
    assert server["command"] == "goex"
    assert main([*server["args"], "--json"]) == 2  # parsed; its example paths are not here
    assert "--workspace /home/me/project" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ([], "nothing to serve"),
        (["--workspace", "/no/such/dir"], "not a directory"),
        (["--http", "/no/such/rules.yaml"], "--http /no/such/rules.yaml"),
        (["--http", "none", "--approver", "console"], "needs --transport http"),
        (["--http", "none", "--approver", "os:no_such_name"], "--approver os:no_such_name"),
        (["--http", "none", "--approver", "os:sep", "--policy", "/dev/null"], "not callable"),
    ],
)
def test_goex_mcp_refuses_a_bad_command_line_before_serving(
    arguments: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    journal = f"sqlite:///{tmp_path}/journal.db"
    assert main(["mcp", "--json", "--journal", journal, *arguments]) == 2
    assert says in json.loads(capsys.readouterr().out)["error"]
