"""`GoexToolSpec`: the goex domain tools (files, shell, SQL, HTTP) as LlamaIndex tools."""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import FunctionTool
from llama_index.core.tools.tool_spec.base import BaseToolSpec
from llama_index.tools.goex.tools import goex_function_tool

from goex_tools.toolset import domain_tools


class GoexToolSpec(BaseToolSpec):
    """Reversible tools over a workspace, a database and an HTTP service (any of them).

    `workspace`: a `goex_tools.domains.fs.Workspace`; `database`: a URL or a name given to
    `register_database`; `http`: a `goex_tools.domains.http.HttpTool` with its undo rules.
    """

    spec_functions: list[Any] = [  # noqa: RUF012 (LlamaIndex declares it so)
        "read_file",
        "write_file",
        "edit_file",
        "delete_path",
        "move_path",
        "make_dir",
        "run_shell",
        "run_sql",
        "http_request",
    ]

    def __init__(
        self,
        *,
        workspace: Any = None,
        database: str | None = None,
        http: Any = None,
        shell: bool = True,
    ) -> None:
        self._functions = domain_tools(
            workspace=workspace, database=database, http=http, shell=shell
        )

    def to_tool_list(
        self, spec_functions: list[Any] | None = None, *args: Any, **kwargs: Any
    ) -> list[FunctionTool]:
        """The tools (only those named in `spec_functions`, if given) as goex FunctionTools."""
        names = {n for n in spec_functions if isinstance(n, str)} if spec_functions else None
        chosen = [f for f in self._functions if names is None or f.__name__ in names]
        return [goex_function_tool(f) for f in chosen]
