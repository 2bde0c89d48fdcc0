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
from langchain_goex.callbacks import GOEX_METADATA_KEY, GoexCallbackHandler


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
        if self.coroutine is None:  # LangChain runs `_run` in a thread: it journals there
            return await super()._arun(*args, config=config, run_manager=run_manager, **kwargs)
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

    def call(*, callbacks: Callbacks = None, **tool_args: Any) -> Any:
        with journaled(tool_args) as done:
            result = inner.invoke(tool_args, config={"callbacks": callbacks})
            done(result)
        return result

    async def acall(*, callbacks: Callbacks = None, **tool_args: Any) -> Any:
        with journaled(tool_args) as done:
            result = await inner.ainvoke(tool_args, config={"callbacks": callbacks})
            done(result)
        return result

    async_only = isinstance(tool, StructuredTool) and tool.func is None
    wrapper = GoexTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema if tool.args_schema is not None else tool.get_input_schema(),
        func=None if async_only else call,
        coroutine=acall,
        return_direct=tool.return_direct,
        metadata={**(tool.metadata or {}), GOEX_METADATA_KEY: "journaled"},
        tags=tool.tags,
    )
    return wrapper


def _model_arguments(tool: BaseTool) -> Callable[[JSONDict], JSONDict]:
    """The arguments of a call the model gave (its tool-call schema), not those LangChain
    injects: these are runtime objects, neither journaled nor handed to an undo."""
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        names = frozenset(schema.get("properties", {}))
    else:
        names = frozenset(schema.model_fields)
    return lambda arguments: {k: v for k, v in arguments.items() if k in names}


@contextmanager
def _scope(
    run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
) -> Iterator[None]:
    """Journal inside the step the callback handler made for this tool call, if any; an
    error reaches the model as a tool error (the journal has recorded the call as failed)."""
    handlers = run_manager.handlers if run_manager is not None else []
    handler = next((h for h in handlers if isinstance(h, GoexCallbackHandler)), None)
    try:
        if handler is None or run_manager is None:
            yield
        else:
            with handler.tracker.scope(str(run_manager.run_id)):
                yield
    except ToolException:
        raise
    except Exception as exc:  # journaled as failed already; the model hears why
        message = str(exc) if isinstance(exc, GoexError) else f"{type(exc).__name__}: {exc}"
        raise ToolException(redact(message)) from exc
