"""LangChain tools whose effects go through goex: `goex_tool(func)` and `reversible_tool(tool)`.

Inside a run journaled by `GoexCallbackHandler`, the steps a goex tool journals become
children of the tool call's step (a container), so a rollback undoes each effect once.
Without the handler, they join the current `goex.run(...)`, or a run of their own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
    Callbacks,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from goex_tools.errors import GoexError
from goex_tools.model import JSONDict
from goex_tools.redaction import redact
from goex_tools.toolset import check_undo, undoable_call
from goex_tools.tracker import call_in_thread
from langchain_goex.callbacks import GOEX_METADATA_KEY, GoexCallbackHandler, is_control_flow


class GoexTool(StructuredTool):
    """A structured tool whose function journals its effects with goex.

    Errors (a refusal by policy, invalid arguments, a path outside the workspace, a failed
    statement or request) reach the model as a tool error message, secrets masked, instead of
    ending the agent loop; the journal has already recorded the call as failed.
    """

    handle_tool_error: bool | str | Callable[[ToolException], str] | None = True

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        with _scope(run_manager):
            return super()._run(*args, config=config, run_manager=run_manager, **kwargs)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        if self.coroutine is None:  # `_run` in a thread, journaling there
            handler = _handler(run_manager)
            tracker = handler.tracker if handler is not None else None
            key = str(run_manager.run_id) if run_manager is not None else ""
            sync_manager = run_manager.get_sync() if run_manager is not None else None
            return await call_in_thread(
                tracker, key, self._run, *args, config=config, run_manager=sync_manager, **kwargs
            )
        with _scope(run_manager):
            return await super()._arun(*args, config=config, run_manager=run_manager, **kwargs)


def goex_tool(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    **kwargs: Any,
) -> GoexTool:
    """A LangChain tool from a function (or coroutine function) that journals its own effects
    (a goex domain tool, a `@goex.reversible` function). Arguments are inferred from its
    signature and docstring."""
    if inspect.iscoroutinefunction(func):
        kwargs["coroutine"] = func
    else:
        kwargs["func"] = func
    tool = GoexTool.from_function(name=name, description=description, **kwargs)
    tool.metadata = {**(tool.metadata or {}), GOEX_METADATA_KEY: "journaled"}
    assert isinstance(tool, GoexTool)
    return tool


def reversible_tool(
    tool: BaseTool,
    *,
    undo: Callable[..., Any] | str | None,
    before: Callable[..., JSONDict] | None = None,
    after: Callable[[Any, JSONDict], JSONDict] | None = None,
    probe: Callable[..., Any] | None = None,
) -> GoexTool:
    """Make any LangChain tool reversible: each call is journaled with its undo.

    - `undo`: an importable function, or a registered compensation kind, reversing a call;
      `None` journals the tool as irreversible (so policy can refuse it).
    - `before(**tool_args)`: state captured before the call; its dict becomes the undo's
      keyword arguments (default: the tool's own arguments). Arguments LangChain injects
      (`ToolRuntime`, `InjectedToolArg`, state) reach the tool but are not journaled.
    - `after(result, undo_kwargs)`: refines the undo's arguments from the result (an id).
    - `probe(**undo_kwargs)`: after a crash, says whether the call happened (True/False/None).

    The wrapper keeps the tool's name, description, `args_schema`, `return_direct`,
    `response_format` (a `content_and_artifact` tool keeps its artifact) and error handling
    (`handle_tool_error`, or goex's: errors reach the model as a tool message).
    """
    inner = tool.model_copy(
        update={
            "handle_tool_error": False,
            "handle_validation_error": False,
            "metadata": {**(tool.metadata or {}), GOEX_METADATA_KEY: "inner"},
        }
    )
    check_undo(undo, probe)

    given = _model_arguments(tool)

    def journaled(tool_args: JSONDict) -> Any:
        return undoable_call(
            tool.name, given(tool_args), undo=undo, before=before, after=after, probe=probe
        )

    with_artifact = tool.response_format == "content_and_artifact"

    def request(tool_args: JSONDict) -> Any:
        if not with_artifact:
            return tool_args
        # called as a tool call, a tool answers with a ToolMessage that carries its artifact
        return {"name": tool.name, "args": tool_args, "id": "goex-inner", "type": "tool_call"}

    def answer(result: Any) -> Any:
        return (result.content, result.artifact) if with_artifact else result

    def call(*, callbacks: Callbacks = None, **tool_args: Any) -> Any:
        with journaled(tool_args) as done:
            result = answer(inner.invoke(request(tool_args), config={"callbacks": callbacks}))
            done(result)
        return result

    async def acall(*, callbacks: Callbacks = None, **tool_args: Any) -> Any:
        with journaled(tool_args) as done:
            reply = await inner.ainvoke(request(tool_args), config={"callbacks": callbacks})
            result = answer(reply)
            done(result)
        return result

    async_only = isinstance(tool, StructuredTool) and tool.func is None
    wrapper = GoexTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema if tool.args_schema is not None else tool.get_input_schema(),
        func=None if async_only else call,
        # a sync tool runs in a thread under `ainvoke`: it is journaled there, whole, so that
        # a cancelled `ainvoke` cannot leave its step pending while the thread goes on
        coroutine=acall if _native_async(tool) else None,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        # the tool's own error handling; goex's default (errors reach the model) otherwise
        handle_tool_error=tool.handle_tool_error or True,
        handle_validation_error=tool.handle_validation_error,
        metadata={**(tool.metadata or {}), GOEX_METADATA_KEY: "journaled"},
        tags=tool.tags,
        verbose=tool.verbose,
    )
    return wrapper


def _native_async(tool: BaseTool) -> bool:
    """True if the tool has a coroutine of its own (not LangChain's thread around `_run`)."""
    if "coroutine" in type(tool).model_fields:  # Tool, StructuredTool
        return getattr(tool, "coroutine", None) is not None
    return type(tool)._arun is not BaseTool._arun


def _model_arguments(tool: BaseTool) -> Callable[[JSONDict], JSONDict]:
    """The arguments of a call the model gave (its tool-call schema), not those LangChain
    injects: these are runtime objects, neither journaled nor handed to an undo."""
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        names = frozenset(schema.get("properties", {}))
    else:
        names = frozenset(schema.model_fields)
    return lambda arguments: {k: v for k, v in arguments.items() if k in names}


def _handler(
    run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
) -> GoexCallbackHandler | None:
    handlers = run_manager.handlers if run_manager is not None else []
    return next((h for h in handlers if isinstance(h, GoexCallbackHandler)), None)


@contextmanager
def _scope(
    run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
) -> Iterator[None]:
    """Journal inside the step the callback handler made for this tool call, if any; an
    error reaches the model as a tool error (the journal has recorded the call as failed).
    A framework's control flow (a LangGraph interrupt, a cancellation) passes untouched."""
    handler = _handler(run_manager)
    try:
        if handler is None or run_manager is None:
            yield
        else:
            with handler.tracker.scope(str(run_manager.run_id)):
                yield
    except ToolException:
        raise
    except Exception as exc:
        if is_control_flow(exc):
            raise
        # journaled as failed already; the model hears why
        message = str(exc) if isinstance(exc, GoexError) else f"{type(exc).__name__}: {exc}"
        raise ToolException(redact(message)) from exc
