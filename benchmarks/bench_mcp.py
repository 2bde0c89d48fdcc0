"""What a tool call costs over MCP: `write_file` and `read_file` through the MCP server (the
SDK's client and server over its in-memory transport: JSON-RPC messages, the container step,
the worker thread), against the same toolset function called directly in a `goex.run`,
measured in the same run, interleaved.

Target: the MCP call costs under 3x the direct journaled call (its overhead is the protocol
and one more journaled step, not a second copy of the work).

Run: .venv/bin/python -m benchmarks.bench_mcp [--quick]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp.shared.memory import create_connected_server_and_client_session

import goex_tools as goex
from benchmarks.harness import Report, interleaved
from goex_tools.domains.fs import Workspace
from goex_tools.mcp.server import build_server
from goex_tools.toolset import domain_tools

MAX_RATIO = 3.0


def main(quick: bool = False) -> None:
    rounds, per_round = (3, 10) if quick else (7, 30)
    where = Path(tempfile.mkdtemp(prefix="goex-bench-mcp-"))
    try:
        asyncio.run(_measure(where, rounds, per_round))
    finally:
        shutil.rmtree(where, ignore_errors=True)


async def _measure(where: Path, rounds: int, per_round: int) -> None:
    root = where / "workspace"
    root.mkdir()
    ws = Workspace(root, store=where / "store", sandbox="none")
    journal = goex.Journal(f"sqlite:///{where / 'journal.db'}")
    tools = {f.__name__: f for f in domain_tools(workspace=ws, shell=False)}
    server = build_server(workspace=ws, shell=False, journal=journal)
    loop = asyncio.get_running_loop()
    report = Report("mcp")
    async with create_connected_server_and_client_session(server) as session:
        count = 0

        def over_mcp(tool: str, arguments: dict[str, Any]) -> None:
            # the loop runs the client and the server; this thread waits for the answer
            future = asyncio.run_coroutine_threadsafe(session.call_tool(tool, arguments), loop)
            assert not future.result(60).isError

        def cases(tool: str) -> tuple[Any, Any]:
            def arguments() -> dict[str, Any]:
                nonlocal count
                count += 1
                path = f"f{count % 50}.txt"
                return (
                    {"path": path, "content": "x" * 100}
                    if tool == "write_file"
                    else {"path": "f0.txt"}
                )

            def direct() -> None:
                with goex.run("bench", journal=journal):
                    tools[tool](**arguments())

            return direct, lambda: over_mcp(tool, arguments())

        await session.call_tool("write_file", {"path": "f0.txt", "content": "x"})
        for tool in ("write_file", "read_file"):
            direct, mcp = cases(tool)
            base, timed = await asyncio.to_thread(
                interleaved, [direct, mcp], rounds=rounds, per_round=per_round
            )
            report.compare(
                "mcp tool call",
                f"{tool} (in-memory transport)",
                base,
                timed,
                max_ratio=MAX_RATIO,
                extra={"baseline": f"toolset {tool} in goex.run", "rounds": rounds},
            )
    report.write()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
