"""What the framework integrations share about tools (framework-free).

The domain tools as plain functions a model can call: each carries the contract's tool name,
a signature and docstring a framework turns into the tool's schema, and returns JSON data.
The workspace, database and HTTP client are bound here, by the program, never chosen by the
model. `langchain_goex` and `llama_index.tools.goex` wrap these functions as their tools.

    tools = domain_tools(workspace=Workspace("/srv/app"), database="sqlite:///app.db",
                         http=HttpTool(rules))

And `undoable_call`, which journals one call of any framework tool (sync or async) with the
undo its integration was given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, JsonValue, WithJsonSchema
from typing_extensions import TypeAliasType

from goex_tools.model import JSONDict, Proposal, Reversibility
from goex_tools.reversible import action, call_compensation
from goex_tools.runtime import OUTPUT_LIMIT, execute, summarize

if TYPE_CHECKING:
    from goex_tools.domains.fs import Workspace
    from goex_tools.domains.http import HttpTool

__all__ = [
    "Header",
    "Tool",
    "check_undo",
    "domain_tools",
    "file_tools",
    "http_tools",
    "sql_tools",
    "undoable_call",
]

Tool = Callable[..., Any]

# Every argument the model fills is described in the schema it sees.
Path_ = Annotated[str, Field(description="A path relative to the workspace root.")]
Text = Annotated[str, Field(description="The full text the file will hold.")]


class Header(BaseModel):
    """One HTTP request header."""

    # a list of these works in OpenAI's strict mode; a free-form object of names does not
    name: str = Field(description="The header's name, e.g. Content-Type.")
    value: str = Field(description="Its value; write a credential as {{secret:NAME}}.")


JsonBody = TypeAliasType(
    "JsonBody",
    Annotated[
        JsonValue,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "object"},
                    {"type": "array", "items": {}},
                    {"type": "string"},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            }
        ),
    ],
)
"""Any JSON value, with a schema that says so (pydantic's JsonValue has none)."""


def domain_tools(
    *,
    workspace: Workspace | None = None,
    database: str | None = None,
    http: HttpTool | None = None,
    shell: bool = True,
    prefix: str = "",
) -> list[Tool]:
    """The tools for whichever of a workspace, a database and an HTTP client are given.

    - `prefix`: put before every tool name, so that two sets (two databases, two
      workspaces) given to one agent do not both offer `run_sql`: `prefix="billing_"`
      gives `billing_run_sql`.
    """
    tools: list[Tool] = []
    if workspace is not None:
        tools += file_tools(workspace, shell=shell)
    if database is not None:
        tools += sql_tools(database)
    if http is not None:
        tools += http_tools(http)
    return [_named(tool, prefix) for tool in tools]


def file_tools(ws: Workspace, *, shell: bool = True) -> list[Tool]:
    """read_file, write_file, edit_file, delete_path, move_path, make_dir (and run_shell)."""

    def read_file(path: Path_) -> str:
        """Read a text file of the workspace."""
        rel = ws.relative(path)
        proposal = Proposal(
            tool="read_file",
            domain="fs",
            inputs={"path": rel},
            reversibility=Reversibility.NO_EFFECT,
            predicted=ws.predicted([rel]),
        )
        text: str = execute(proposal, lambda _: (ws.root / rel).read_text()[:OUTPUT_LIMIT])
        return text

    def write_file(path: Path_, content: Text) -> JSONDict:
        """Create or overwrite a text file in the workspace; missing directories are created."""
        return ws.write_file(path, content).model_dump()

    def edit_file(
        path: Path_,
        old: Annotated[str, Field(description="The exact text to replace.")],
        new: Annotated[str, Field(description="The text to put in its place.")],
        replace_all: Annotated[
            bool, Field(description="Replace every occurrence of `old`, not exactly one.")
        ] = False,
    ) -> JSONDict:
        """Replace the text `old` by `new` in a file of the workspace; `old` must occur
        exactly once unless replace_all is true."""
        return ws.edit_file(path, old, new, replace_all=replace_all).model_dump()

    def delete_path(
        path: Annotated[str, Field(description="The file or directory, relative to the root.")],
    ) -> JSONDict:
        """Delete a file, or a directory with everything in it, from the workspace."""
        return ws.delete_path(path).model_dump()

    def move_path(
        source: Annotated[str, Field(description="The file or directory to move.")],
        destination: Annotated[str, Field(description="Its new path; must not exist yet.")],
    ) -> JSONDict:
        """Move or rename a file or directory of the workspace."""
        return ws.move_path(source, destination).model_dump()

    def make_dir(path: Path_) -> JSONDict:
        """Create a directory in the workspace (and its missing parents)."""
        return ws.make_dir(path).model_dump()

    def run_shell(
        command: Annotated[str, Field(description="A shell command line, run by /bin/sh.")],
    ) -> JSONDict:
        """Run a shell command in the workspace, in a sandbox without network access;
        returns its exit code, output and the files it changed."""
        return ws.run_shell(command).model_dump()

    tools: list[Tool] = [read_file, write_file, edit_file, delete_path, move_path, make_dir]
    return [*tools, run_shell] if shell else tools


def sql_tools(database: str) -> list[Tool]:
    """run_sql over one database (a name given to `register_database`, or a URL)."""
    from goex_tools.domains.sql import run_sql as run
    from goex_tools.domains.sql.databases import lookup

    ref = lookup(database)[1]
    called = f"the {ref.dialect} database" + (f" {ref.name!r}" if ref.name else "")

    def run_sql(
        sql: Annotated[str, Field(description="One or more SQL statements, separated by ;.")],
    ) -> JSONDict:
        return run(sql, database).model_dump(mode="json")

    run_sql.__doc__ = (
        f"Run SQL statements on {called} in one transaction; returns the rows of the last "
        f"statement and the rows changed."
    )
    return [run_sql]


def http_tools(api: HttpTool) -> list[Tool]:
    """http_request through one HttpTool (its undo rules and secrets)."""

    def http_request(
        method: Annotated[str, Field(description="GET, POST, PUT, PATCH or DELETE.")],
        url: Annotated[str, Field(description="The full URL, with its query string.")],
        headers: Annotated[
            list[Header] | None, Field(description="Request headers, if any.")
        ] = None,
        body: Annotated[
            JsonBody,
            Field(description="The JSON body (object, array, string, number, boolean), if any."),
        ] = None,
    ) -> JSONDict:
        """Send an HTTP request with an optional JSON body; write credentials as
        {{secret:NAME}}. Returns the status code, headers and body."""
        pairs = [Header.model_validate(h) for h in headers or []]
        given = {h.name: h.value for h in pairs} if headers is not None else None
        return api.request(method, url, headers=given, json=body).model_dump(mode="json")

    return [http_request]


def _named(tool: Tool, prefix: str) -> Tool:
    """The tool with its name prefixed, its signature's annotations evaluated (frameworks
    read them) and its docstring on one line (the description the model sees)."""
    tool.__signature__ = inspect.signature(tool, eval_str=True)  # type: ignore[attr-defined]
    tool.__doc__ = " ".join((tool.__doc__ or "").split())  # one line, as the model sees it
    tool.__name__ = tool.__qualname__ = prefix + tool.__name__
    return tool


Done = Callable[[Any], None]


def check_undo(undo: Callable[..., Any] | str | None, probe: Callable[..., Any] | None) -> None:
    """Fail when a reversible tool is made, not at its first call, if its undo or probe
    cannot be journaled (a lambda, a nested function: nothing another process can import)."""
    if undo is not None:
        call_compensation(undo, {}, probe=probe)


@contextmanager
def undoable_call(
    tool: str,
    arguments: JSONDict,
    *,
    undo: Callable[..., Any] | str | None,
    before: Callable[..., JSONDict] | None = None,
    after: Callable[[Any, JSONDict], JSONDict] | None = None,
    probe: Callable[..., Any] | None = None,
) -> Iterator[Done]:
    """Journal the block, which calls a tool with `arguments`, as one step with its undo.

    The block hands the tool's result to the yielded `done(result)`, which refines the undo
    with `after` and keeps a summary of the result. `before(**arguments)` gives the undo's
    keyword arguments (default: the arguments); `undo=None` journals an irreversible call.
    A plain context manager, so the same code journals a sync call and an awaited one.
    """
    undo_kwargs = before(**arguments) if before else dict(arguments)
    with action(tool, undo=undo, undo_kwargs=undo_kwargs, inputs=arguments, probe=probe) as handle:

        def done(result: Any) -> None:
            if after is not None and undo is not None:
                refined = after(result, dict(undo_kwargs))
                handle.set_compensation(call_compensation(undo, refined, probe=probe))
            handle.output = summarize(result)

        yield done
