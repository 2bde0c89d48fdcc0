"""`GoexToolSpec`: the goex domain tools (files, shell, SQL, HTTP) as LlamaIndex tools."""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import FunctionTool, ToolMetadata
from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec
from llama_index.tools.goex.tools import goex_function_tool
from pydantic import BaseModel

from goex_tools.domains.fs import Workspace
from goex_tools.domains.http import HttpTool
from goex_tools.toolset import Tool, domain_tools


class GoexToolSpec(BaseToolSpec):
    """Reversible tools over a workspace, a database and an HTTP service (any of them).

    - `workspace`: the files the tools (and `run_shell`) may change.
    - `database`: a URL, or a name given to `register_database`, for `run_sql`.
    - `http`: the HTTP client (its undo rules and secrets) for `http_request`.
    - `shell`: offer `run_shell` with a workspace (default True).
    - `prefix`: put before every tool name, so that two specs given to one agent (two
      databases) do not both offer `run_sql`: `prefix="billing_"` gives `billing_run_sql`.

    `spec_functions` names the tools this configuration provides; each is also an attribute
    of the spec, as in any LlamaIndex tool spec.
    """

    spec_functions: list[SPEC_FUNCTION_TYPE]

    def __init__(
        self,
        *,
        workspace: Workspace | None = None,
        database: str | None = None,
        http: HttpTool | None = None,
        shell: bool = True,
        prefix: str = "",
    ) -> None:
        functions = domain_tools(
            workspace=workspace, database=database, http=http, shell=shell, prefix=prefix
        )
        self._functions: dict[str, Tool] = {f.__name__: f for f in functions}
        self._tools = {name: goex_function_tool(f) for name, f in self._functions.items()}
        self.spec_functions = list(self._functions)
        for name, function in self._functions.items():
            setattr(self, name, function)

    def get_fn_schema_from_fn_name(
        self, fn_name: str, spec_functions: list[SPEC_FUNCTION_TYPE] | None = None
    ) -> type[BaseModel] | None:
        """The arguments' schema of the tool `fn_name`. Raises ValueError for another name."""
        return self._tool(fn_name).metadata.fn_schema

    def get_metadata_from_fn_name(
        self, fn_name: str, spec_functions: list[SPEC_FUNCTION_TYPE] | None = None
    ) -> ToolMetadata | None:
        """Name, description and schema of the tool `fn_name`. Raises ValueError for another
        name."""
        return self._tool(fn_name).metadata

    def to_tool_list(
        self,
        spec_functions: list[SPEC_FUNCTION_TYPE] | None = None,
        func_to_metadata_mapping: dict[str, ToolMetadata] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[FunctionTool]:
        """The tools (those named in `spec_functions`, if given) as goex FunctionTools; a
        tool named in `func_to_metadata_mapping` takes that metadata (name, description,
        schema). Raises ValueError for a name this spec does not provide."""
        mapping = func_to_metadata_mapping or {}
        names = [n if isinstance(n, str) else n[0] for n in spec_functions or self.spec_functions]
        tools: list[FunctionTool] = []
        for name in names:
            self._tool(name)
            if name in mapping:
                tools.append(goex_function_tool(self._functions[name], tool_metadata=mapping[name]))
            else:
                tools.append(self._tools[name])
        return tools

    def _tool(self, name: str) -> FunctionTool:
        if name not in self._tools:
            raise ValueError(
                f"no tool {name!r} in this GoexToolSpec; it provides {', '.join(self._tools)}"
            )
        return self._tools[name]
