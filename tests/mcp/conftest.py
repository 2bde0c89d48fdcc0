"""The MCP server under real clients: the demo's world (a workspace, an SQLite database, a
REST service on 127.0.0.1), a `goex mcp` process over stdio or streamable HTTP, and the
state checks every test makes (files, every row, the service)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import yaml
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult

from goex_tools.mcp import RUN_ID_META, STEP_ID_META
from tests.integrations.conftest import load_demo

GOEX = [sys.executable, "-m", "goex_tools.cli"]
ANNOUNCED = re.compile(r"goex MCP server at (\S+)")


@pytest.fixture
def world() -> Iterator[Any]:
    """A temporary workspace, SQLite database and HTTP service (the demo's), a journal, and
    the service's undo rules as a file for `goex mcp --http`."""
    created = load_demo().DemoWorld()
    rules = [rule.model_dump(mode="json", exclude_defaults=True) for rule in created.rules.rules]
    created.rules_file = created.dir / "rules.yaml"
    created.rules_file.write_text(yaml.safe_dump({"rules": rules}))
    yield created
    created.close()


def server_args(world: Any, *extra: str) -> list[str]:
    """`goex mcp` over the world's workspace, database and service, journaling to its journal."""
    return [
        "mcp",
        "--workspace", str(world.root),
        "--store", str(world.dir / "store"),
        "--sandbox", world.sandbox,
        "--database", world.database,
        "--http", str(world.rules_file),
        "--journal", world.journal.url,
        *extra,
    ]  # fmt: skip


def calls(world: Any) -> list[tuple[str, dict[str, Any]]]:
    """The demo's tool calls, in order (files, a shell command, SQL, REST, files)."""
    return [call for turn in world.script() if isinstance(turn, list) for call in turn]


@asynccontextmanager
async def stdio_session(args: list[str], **client: Any) -> AsyncIterator[ClientSession]:
    """The MCP SDK's client over stdio, to a `goex mcp` process it starts."""
    params = StdioServerParameters(command=GOEX[0], args=[*GOEX[1:], *args], env=dict(os.environ))
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, **client) as session,
    ):
        await session.initialize()
        yield session


@contextmanager
def http_server(args: list[str]) -> Iterator[str]:
    """A `goex mcp --transport http` process on a free port of 127.0.0.1; yields its URL."""
    command = [*GOEX, *args, "--transport", "http", "--port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        said = ""
        while not (found := ANNOUNCED.search(said)):
            line = process.stderr.readline()  # warnings may come first
            assert line, f"the server did not start: {said}"
            said += line
        # keep reading what it says, so that a full pipe never blocks it
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(30)


@asynccontextmanager
async def http_session(
    url: str, headers: dict[str, str] | None = None, **client: Any
) -> AsyncIterator[ClientSession]:
    """The MCP SDK's client over streamable HTTP."""
    async with (
        _streamable_http(url, headers) as (read, write, _),
        ClientSession(read, write, **client) as session,
    ):
        await session.initialize()
        yield session


def _streamable_http(url: str, headers: dict[str, str] | None) -> Any:
    try:  # mcp 1.25+; 1.24 has only the older name
        from mcp.client.streamable_http import streamable_http_client
    except ImportError:
        from mcp.client.streamable_http import streamablehttp_client

        return streamablehttp_client(url, headers=headers)
    return streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))


async def call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """A tool call that must succeed."""
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result.content
    return result


def run_of(result: CallToolResult) -> str:
    assert result.meta is not None
    run_id: str = result.meta[RUN_ID_META]
    return run_id


def step_of(result: CallToolResult) -> str:
    assert result.meta is not None
    step_id: str = result.meta[STEP_ID_META]
    return step_id


def goex_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`goex ...` in a process of its own."""
    return subprocess.run([*GOEX, *args], capture_output=True, text=True, timeout=120)


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
