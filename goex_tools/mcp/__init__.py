"""goex as an MCP server: any MCP client's agent gets reversible tools (`goex mcp`).

The server itself is `goex_tools.mcp.server` (`build_server`, `serve`); it needs the MCP SDK,
`pip install 'goex-tools[mcp]'`. This package's other modules do not: `command` adds
`goex mcp` to the CLI, `sessions` maps MCP sessions to goex runs, `approval` routes a
policy's `ask` to the client's user, `review` is what the review tools say.
"""

from goex_tools.mcp.sessions import RUN_ID_HEADER, RUN_ID_META, STEP_ID_META

__all__ = ["RUN_ID_HEADER", "RUN_ID_META", "STEP_ID_META"]
