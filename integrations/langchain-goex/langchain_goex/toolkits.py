"""`GoexToolkit`: the goex domain tools (files, shell, SQL, HTTP) as LangChain tools."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, BaseToolkit
from pydantic import ConfigDict

from goex_tools.toolset import domain_tools
from langchain_goex.tools import goex_tool


class GoexToolkit(BaseToolkit):
    """Reversible tools over a workspace, a database and an HTTP service (any of them).

    `workspace`: a `goex_tools.domains.fs.Workspace`; `database`: a URL or a name given to
    `register_database`; `http`: a `goex_tools.domains.http.HttpTool` with its undo rules.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    workspace: Any = None
    database: str | None = None
    http: Any = None
    shell: bool = True

    def get_tools(self) -> list[BaseTool]:
        functions = domain_tools(
            workspace=self.workspace, database=self.database, http=self.http, shell=self.shell
        )
        return [goex_tool(f) for f in functions]
