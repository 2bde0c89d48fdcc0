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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from goex_tools.model import JSONDict, Proposal, Reversibility
from goex_tools.reversible import action, call_compensation
from goex_tools.runtime import OUTPUT_LIMIT, execute, summarize

if TYPE_CHECKING:
    from goex_tools.domains.fs import Workspace
    from goex_tools.domains.http import HttpTool

Tool = Callable[..., Any]


def domain_tools(
    *,
    workspace: Workspace | None = None,
    database: str | None = None,
    http: HttpTool | None = None,
    shell: bool = True,
) -> list[Tool]:
    """The tools for whichever of a workspace, a database and an HTTP client are given."""
    tools: list[Tool] = []
    if workspace is not None:
        tools += file_tools(workspace, shell=shell)
    if database is not None:
        tools += sql_tools(database)
    if http is not None:
        tools += http_tools(http)
    return tools


def file_tools(ws: Workspace, *, shell: bool = True) -> list[Tool]:
    """read_file, write_file, edit_file, delete_path, move_path, make_dir (and run_shell)."""

    def read_file(path: str) -> str:
        """Read a text file of the workspace (path relative to the workspace)."""
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

    def write_file(path: str, content: str) -> JSONDict:
        """Create or overwrite a text file in the workspace; missing directories are created."""
        return ws.write_file(path, content).model_dump()

    def edit_file(path: str, old: str, new: str, replace_all: bool = False) -> JSONDict:
        """Replace the text `old` by `new` in a file; `old` must occur exactly once unless
        replace_all is true."""
        return ws.edit_file(path, old, new, replace_all=replace_all).model_dump()

    def delete_path(path: str) -> JSONDict:
        """Delete a file or a directory with everything in it."""
        return ws.delete_path(path).model_dump()

    def move_path(source: str, destination: str) -> JSONDict:
        """Move or rename a file or directory to a path that does not exist yet."""
        return ws.move_path(source, destination).model_dump()

    def make_dir(path: str) -> JSONDict:
        """Create a directory (and its missing parents)."""
        return ws.make_dir(path).model_dump()

    def run_shell(command: str) -> JSONDict:
        """Run a shell command in the workspace, in a sandbox without network access; returns
        its exit code, output and the files it changed."""
        return ws.run_shell(command).model_dump()

    tools: list[Tool] = [read_file, write_file, edit_file, delete_path, move_path, make_dir]
    return [*tools, run_shell] if shell else tools


def sql_tools(database: str) -> list[Tool]:
    """run_sql over one database (a name given to `register_database`, or a URL)."""
    from goex_tools.domains.sql import run_sql as run
    from goex_tools.domains.sql.databases import lookup

    dialect = lookup(database)[1].dialect

    def run_sql(sql: str) -> JSONDict:
        return run(sql, database).model_dump(mode="json")

    run_sql.__doc__ = (
        f"Run SQL statements on the {dialect} database in one transaction; returns the rows "
        f"of the last statement and the rows changed."
    )
    return [run_sql]


def http_tools(api: HttpTool) -> list[Tool]:
    """http_request through one HttpTool (its undo rules and secrets)."""

    def http_request(
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> JSONDict:
        """Send an HTTP request (GET, POST, PUT, PATCH, DELETE) with an optional JSON body;
        write credentials as {{secret:NAME}}. Returns the status code, headers and body."""
        return api.request(method, url, headers=headers, json=body).model_dump(mode="json")

    return [http_request]


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
