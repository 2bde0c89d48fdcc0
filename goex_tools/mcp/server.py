"""goex as an MCP server: the domain tools, journaled, with review and undo (needs `mcp`).

    server = build_server(workspace=Workspace("/srv/app"), databases=["sqlite:///app.db"],
                          http=HttpTool(rules), policy=Policy.from_file("policy.yaml"))
    serve(server, "stdio")          # or "http": streamable HTTP on 127.0.0.1:8765/mcp

The tools are `goex_tools.toolset`'s, as the LangChain toolkit offers them; each call is
journaled as one container step of a run (see `sessions`), its domain effect as the child
step. A result carries its run and step ids in `_meta` (`goex/run_id`, `goex/step_id`).
An error (a refusal by policy, a bad path, a failed statement) is a tool result with
`isError`, its text redacted, so the model reads why. `goex_review` and `goex_rollback` let
the client show a person what the session changed and undo it; the same review is a resource
(`goex://session/steps`, `goex://runs/{run_id}/steps`) and two prompts.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO

import anyio
import sqlalchemy as sa
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from goex_tools.errors import GoexError, InvalidArgument, NotFound
from goex_tools.journal import Journal, get_journal
from goex_tools.mcp.approval import Asker, SessionGate, asking
from goex_tools.mcp.review import REVIEW_PROMPT, UNDO_PROMPT, review, undo
from goex_tools.mcp.sessions import RUN_ID_HEADER, RUN_ID_META, Call, Session, SessionRuns
from goex_tools.redaction import redact
from goex_tools.toolset import domain_tools

if TYPE_CHECKING:
    from goex_tools.domains.fs import Workspace
    from goex_tools.domains.http import HttpTool
    from goex_tools.policy import Policy

__all__ = ["Transport", "build_server", "serve"]

Transport = Literal["stdio", "http"]
READ_ONLY = frozenset({"read_file"})
GoexContext = Context[Any, Session, Any]


def build_server(
    *,
    workspace: Workspace | None = None,
    databases: Sequence[str] = (),
    http: HttpTool | None = None,
    shell: bool = True,
    prefix: str = "",
    policy: Policy | None = None,
    journal: Journal | str | None = None,
    run_name: str = "",
    run_id: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
) -> FastMCP[Session]:
    """An MCP server offering the domain tools over what is given, and the review tools.

    - `databases`: URLs or names given to `register_database`; with more than one, each
      database's tool is named after it (`billing_run_sql`).
    - `prefix`: put before every domain tool's name.
    - `policy`: the gate every effect passes; its `ask` goes to the client's user where the
      client offers elicitation, else to the policy's approver, else refuses.
    - `run_name`, `run_id`: the name of each session's run; one run every session joins.
    - `host`, `port`: where `serve(server, "http")` listens.

    Raises InvalidArgument when there is nothing to serve or two tools would share a name.
    """
    runs = SessionRuns(
        get_journal(journal),
        gate=SessionGate(policy) if policy is not None else None,
        run_name=run_name,
        run_id=run_id,
    )
    functions = _domain_functions(workspace, databases, http, shell, prefix)
    if not functions:
        raise InvalidArgument("nothing to serve: give a workspace, a database or an HTTP client")

    @asynccontextmanager
    async def session_scope(_: FastMCP[Session]) -> AsyncIterator[Session]:
        session = runs.open()
        try:
            yield session
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)

    server: FastMCP[Session] = FastMCP(
        "goex",
        instructions=INSTRUCTIONS,
        lifespan=session_scope,
        host=host,
        port=port,
        log_level="WARNING",
    )
    names = [f.__name__ for f in functions] + ["goex_review", "goex_rollback"]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"two tools would share a name: {sorted(names)}")
    for function in functions:
        _add_tool(server, function)
    _review_tools(server, runs.journal)
    _review_resources(server, runs.journal)
    _review_prompts(server, runs.journal)
    return server


INSTRUCTIONS = (
    "Every tool call that changes files, database rows or web resources is journaled by goex "
    "with its undo. goex_review lists this session's tool calls and what each changed; "
    "goex_rollback undoes the last N calls, everything after a step, or the whole run "
    "(call it with dry_run=true first). Write credentials as {{secret:NAME}}: goex sends "
    "the value, you never see it."
)


def _domain_functions(
    workspace: Workspace | None,
    databases: Sequence[str],
    http: HttpTool | None,
    shell: bool,
    prefix: str,
) -> list[Callable[..., Any]]:
    functions = domain_tools(workspace=workspace, shell=shell, prefix=prefix)
    labels = [_label(db) for db in databases] if len(databases) > 1 else [""]
    if len(set(labels)) != len(labels):
        raise InvalidArgument(f"two databases would be called the same: {labels}")
    for database, label in zip(databases, labels, strict=False):
        functions += domain_tools(database=database, prefix=prefix + label)
    return functions + domain_tools(http=http, prefix=prefix)


def _label(database: str) -> str:
    """A tool-name prefix for a database: its registered name, else its file or db name."""
    if "://" in database:
        url = sa.engine.make_url(database)
        path = url.database or url.host or "db"
        database = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_]", "_", database).strip("_")[:40] + "_"


def _add_tool(server: FastMCP[Session], function: Callable[..., Any]) -> None:
    """Serve `function` as an MCP tool: same name, description and argument schema, each
    call journaled in the session's run."""
    name = function.__name__

    async def call(**arguments: Any) -> CallToolResult:
        ctx = server.get_context()
        try:
            session, given = _session(ctx), _given_run(ctx)
        except GoexError as exc:
            return _error(exc)
        asker = Asker(lambda message: _elicit(ctx, message), asyncio.get_running_loop())
        with asking(asker if _can_elicit(ctx) else None):
            done = await session.call(name, function, to_jsonable_python(arguments), given)
        return _result(done)

    signature = inspect.signature(function)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=CallToolResult
    )
    call.__name__ = name
    read_only = name.endswith(tuple(READ_ONLY))
    server.add_tool(
        call,
        name=name,
        description=function.__doc__,
        annotations=ToolAnnotations(readOnlyHint=True) if read_only else None,
    )


def _session(ctx: GoexContext) -> Session:
    session = ctx.request_context.lifespan_context
    if not session.client:
        params = ctx.session.client_params
        session.client = params.clientInfo.name if params is not None else ""
    return session


def _given_run(ctx: GoexContext) -> str | None:
    """The run the client names for this call: `_meta`, else the HTTP header."""
    meta = ctx.request_context.meta
    given = (meta.model_extra or {}).get(RUN_ID_META) if meta is not None else None
    request = ctx.request_context.request
    if given is None and request is not None:
        given = request.headers.get(RUN_ID_HEADER)
    if given is not None and not isinstance(given, str):
        raise InvalidArgument(f"{RUN_ID_META} must be a string")
    return given


def _can_elicit(ctx: GoexContext) -> bool:
    params = ctx.session.client_params
    return params is not None and params.capabilities.elicitation is not None


class Approval(BaseModel):
    """The form a question to the client's user shows: one yes/no field."""

    approve: bool = Field(description="Yes: let it go ahead.")


async def _elicit(ctx: GoexContext, message: str, question: str = "Approve this action?") -> bool:
    answer = await ctx.elicit(f"{message}\n\n{question}", Approval)
    return answer.action == "accept" and answer.data.approve is True


def _result(call: Call) -> CallToolResult:
    if call.error is not None:
        return _error(call.error, call.meta)
    data = redact(to_jsonable_python(call.result))
    text = data if isinstance(data, str) else json.dumps(data, indent=1, ensure_ascii=False)
    return CallToolResult.model_validate(
        {
            "content": [{"type": "text", "text": text}],
            "structuredContent": data if isinstance(data, dict) else None,
            "_meta": call.meta,
        }
    )


def _error(exc: BaseException, meta: dict[str, Any] | None = None) -> CallToolResult:
    """The error as the model reads it: GoexErrors are written for it; others get their
    type. Secrets masked."""
    message = str(exc) if isinstance(exc, GoexError) else f"{type(exc).__name__}: {exc}"
    return CallToolResult.model_validate(
        {"content": [{"type": "text", "text": redact(message)}], "isError": True, "_meta": meta}
    )


def _data(data: dict[str, Any], *, error: bool = False) -> CallToolResult:
    return CallToolResult.model_validate(
        {
            "content": [{"type": "text", "text": data.get("text") or json.dumps(data)}],
            "structuredContent": data,
            "isError": error,
            "_meta": {RUN_ID_META: data["run"]["id"]} if "run" in data else None,
        }
    )


# Review and undo: tools, resources, prompts.

RunArg = Annotated[
    str | None,
    Field(description="A run this session's calls went to; default: its current run."),
]


def _session_run(ctx: GoexContext, run_id: str | None) -> tuple[Session, str | None]:
    """The session, and the run its review concerns: `run_id` if its calls went there, else
    the run the client names (header or `_meta`: a client opening a session per call reviews
    the run it names), else its current run (None before its first call)."""
    session = _session(ctx)
    given = _given_run(ctx)
    if given is not None:
        session.run_for(given)  # the client's run is this session's to review
    if run_id is not None and not session.owns(run_id):
        raise NotFound(f"run {run_id!r} is not one this session's tool calls went to")
    chosen = run_id or given or session.current
    return session, chosen if session.owns(chosen) else None


def _reviewed(ctx: GoexContext, run_id: str | None) -> tuple[Session, str]:
    session, chosen = _session_run(ctx, run_id)
    if chosen is None:
        raise NotFound("this session has made no tool call yet: there is nothing to review")
    return session, chosen


def _review_tools(server: FastMCP[Session], journal: Journal) -> None:
    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def goex_review(run_id: RunArg = None) -> CallToolResult:
        """List this session's tool calls, numbered as goex_rollback counts them, each with
        what it changed (file diffs, rows before and after, HTTP requests) and its undo."""
        try:
            _, chosen = _reviewed(server.get_context(), run_id)
            return _data(await anyio.to_thread.run_sync(review, journal, chosen))
        except GoexError as exc:
            return _error(exc)

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    async def goex_rollback(
        calls: Annotated[
            int | None, Field(description="Undo the last N tool calls of the run.", ge=1)
        ] = None,
        to_step: Annotated[
            str | None,
            Field(description="Undo every call after this one (a goex/step_id), keeping it."),
        ] = None,
        whole_run: Annotated[bool, Field(description="Undo the whole run.")] = False,
        dry_run: Annotated[
            bool, Field(description="Only say what would be undone (default); false undoes.")
        ] = True,
        run_id: RunArg = None,
    ) -> CallToolResult:
        """Undo this session's last N tool calls (calls=N), everything after a step
        (to_step=ID) or the whole run (whole_run=true). Call with dry_run=true first and show
        the person what would be undone; dry_run=false undoes it. Once undone, the run is
        closed: later calls go to a new run."""
        ctx = server.get_context()
        try:
            session, chosen = _reviewed(ctx, run_id)

            def roll(dry: bool) -> dict[str, Any]:
                return undo(
                    journal, chosen, calls=calls, to_step=to_step, whole_run=whole_run, dry_run=dry
                )

            if not dry_run:
                _check_idle(session, chosen)
            if not dry_run and _can_elicit(ctx):  # the person sees the plan and decides
                plan = await anyio.to_thread.run_sync(roll, True)
                if not await _elicit(ctx, _plan_text(plan), "Undo these steps now?"):
                    declined = "The person declined: nothing was undone."
                    return _data({**plan, "declined": True, "text": declined})
                _check_idle(session, chosen)  # a call may have started while they read
            data = await anyio.to_thread.run_sync(roll, dry_run)
        except GoexError as exc:
            return _error(exc)
        if not dry_run:
            if chosen == session.current:
                data["next_run"] = "this run is closed: the session's next calls go to a new run"
            session.rolled_back(chosen)
        return _data(data, error=not data["complete"])


def _check_idle(session: Session, run_id: str) -> None:
    running = session.in_flight(run_id)
    if running:
        raise GoexError(
            f"{len(running)} tool call(s) of run {run_id} still running "
            f"({', '.join(running)}); nothing was undone: try again when they end"
        )


def _plan_text(plan: dict[str, Any]) -> str:
    lines = [f"Roll back run {plan['run']['id']} ({plan['run']['name']}): {plan['outcome']}"]
    for outcome in plan["report"]["outcomes"]:
        undo = f" [{outcome['undo']}]" if outcome.get("undo") else ""
        lines.append(f"- {outcome['tool']}: {outcome['detail']}{undo}")
    return "\n".join(lines)


def _review_resources(server: FastMCP[Session], journal: Journal) -> None:
    @server.resource(
        "goex://session/steps",
        name="session_steps",
        description="This session's tool calls in its current run, with what each changed.",
        mime_type="application/json",
    )
    async def session_steps() -> str:
        _, chosen = _session_run(server.get_context(), None)
        if chosen is None:
            return json.dumps({"run": None, "steps": []})
        return json.dumps(await anyio.to_thread.run_sync(review, journal, chosen))

    @server.resource(
        "goex://runs/{run_id}/steps",
        name="run_steps",
        description="The steps of a run this session's calls went to, with what each changed.",
        mime_type="application/json",
    )
    async def run_steps(run_id: str) -> str:
        _, chosen = _reviewed(server.get_context(), run_id)
        return json.dumps(await anyio.to_thread.run_sync(review, journal, chosen))


def _review_prompts(server: FastMCP[Session], journal: Journal) -> None:
    @server.prompt(
        name="review_changes",
        description="Have the model summarize what this session changed and offer to undo it.",
    )
    async def review_changes() -> str:
        _, chosen = _session_run(server.get_context(), None)
        if chosen is None:
            text = "(no tool call yet in this session)"
        else:
            text = (await anyio.to_thread.run_sync(review, journal, chosen))["text"]
        return REVIEW_PROMPT.format(text=text)

    @server.prompt(
        name="undo_last",
        description="Undo the last N tool calls: a dry run first, then after confirmation.",
    )
    def undo_last(calls: int = 1) -> str:
        return UNDO_PROMPT.format(calls=calls)


def serve(
    server: FastMCP[Session],
    transport: Transport = "stdio",
    *,
    announce: Callable[[str], Any] | None = None,
) -> None:
    """Serve until the client goes (stdio) or the process is stopped (http). For http,
    `announce` gets the URL once the port is bound (port 0 picks a free one)."""
    if transport == "stdio":
        with _reserved_for_protocol():
            anyio.run(server.run_stdio_async)
    else:
        anyio.run(_serve_http, server, announce)


@contextmanager
def _reserved_for_protocol() -> Iterator[None]:
    """While serving over stdio, stdin and stdout carry the protocol only: the SDK reads and
    writes their `buffer`; text printed by anything else (an approver, a library) goes to
    stderr, and reading stdin as text (`input()`) gets end of input, never a message."""
    saved = sys.stdin, sys.stdout
    sys.stdin = _Reserved(sys.stdin, io.StringIO())
    sys.stdout = _Reserved(sys.stdout, sys.stderr)
    try:
        yield
    finally:
        sys.stdin, sys.stdout = saved


class _Reserved:
    """A standard stream whose `buffer` is the protocol's and whose text goes elsewhere."""

    def __init__(self, protocol: TextIO, instead: TextIO) -> None:
        self.buffer = protocol.buffer
        self._instead = instead

    def __getattr__(self, name: str) -> Any:
        return getattr(self._instead, name)


async def _serve_http(server: FastMCP[Session], announce: Callable[[str], Any] | None) -> None:
    import uvicorn

    host, port = server.settings.host, server.settings.port
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family)
    bound = sock.getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    if announce is not None:
        announce(f"http://{where}:{bound}{server.settings.streamable_http_path}")
    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])
