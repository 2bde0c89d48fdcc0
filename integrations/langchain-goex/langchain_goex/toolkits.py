"""`GoexToolkit`: the goex domain tools (files, shell, SQL, HTTP) as LangChain tools."""

from __future__ import annotations

from langchain_core.tools import BaseTool, BaseToolkit
from pydantic import ConfigDict

from goex_tools.domains.fs import Workspace
from goex_tools.domains.http import HttpTool
from goex_tools.toolset import domain_tools
from langchain_goex.tools import goex_tool


class GoexToolkit(BaseToolkit):
    """Reversible tools over a workspace, a database and an HTTP service (any of them).

    - `workspace`: the files the tools (and `run_shell`) may change.
    - `database`: a URL, or a name given to `register_database`, for `run_sql`.
    - `http`: the HTTP client (its undo rules and secrets) for `http_request`.
    - `shell`: offer `run_shell` with a workspace (default True).
    - `prefix`: put before every tool name, so that two toolkits given to one agent (two
      databases) do not both offer `run_sql`: `prefix="billing_"` gives `billing_run_sql`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    workspace: Workspace | None = None
    database: str | None = None
    http: HttpTool | None = None
    shell: bool = True
    prefix: str = ""

    def get_tools(self) -> list[BaseTool]:
        functions = domain_tools(
            workspace=self.workspace,
            database=self.database,
            http=self.http,
            shell=self.shell,
            prefix=self.prefix,
        )
        return [goex_tool(f) for f in functions]
