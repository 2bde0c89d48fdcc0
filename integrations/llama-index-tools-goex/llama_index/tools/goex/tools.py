"""LlamaIndex `FunctionTool`s whose effects go through goex.

`goex_function_tool(fn)` for a function that journals its own effects (a goex domain tool,
a `@goex.reversible` function); `reversible_function_tool(fn_or_tool, undo=...)` to make any
function or FunctionTool reversible. Called by an agent under an installed `GoexSpanHandler`,
their steps become children of the tool call's step, in the agent run's goex run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.tools import BaseTool, FunctionTool
from llama_index.tools.goex.handler import installed_handlers

from goex_tools.model import JSONDict
from goex_tools.toolset import check_undo, undoable_call


class GoexFunctionTool(FunctionTool):
    """A FunctionTool whose function journals its effects with goex."""


def is_goex_tool(tool: BaseTool) -> bool:
    return isinstance(tool, GoexFunctionTool)


def goex_function_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    **kwargs: Any,
) -> GoexFunctionTool:
    """A tool from a function (or coroutine function) that journals its own effects; schema
    from its signature."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def in_scope_async(*args: Any, **kw: Any) -> Any:
            with _scope():
                return await fn(*args, **kw)

        kwargs["async_fn"] = in_scope_async
    else:

        @functools.wraps(fn)
        def in_scope(*args: Any, **kw: Any) -> Any:
            with _scope():
                return fn(*args, **kw)

        kwargs["fn"] = in_scope
    tool = GoexFunctionTool.from_defaults(
        name=name or fn.__name__, description=description, **kwargs
    )
    assert isinstance(tool, GoexFunctionTool)
    return tool


def reversible_function_tool(
    fn: Callable[..., Any] | FunctionTool,
    *,
    undo: Callable[..., Any] | str | None,
    before: Callable[..., JSONDict] | None = None,
    after: Callable[[Any, JSONDict], JSONDict] | None = None,
    probe: Callable[..., Any] | None = None,
    name: str | None = None,
    description: str | None = None,
) -> GoexFunctionTool:
    """Make a function, coroutine function or FunctionTool reversible: each call is journaled
    with its undo.

    Arguments as in `goex_tools.reversible`: `undo` (an importable function or a registered
    kind; None for a one-way action, journaled as irreversible so policy can refuse it),
    `before(**arguments)`, `after(result, undo_kwargs)` and `probe`.
    """
    if isinstance(fn, FunctionTool):
        name = name or fn.metadata.name
        description = description or fn.metadata.description
        fn = fn.real_fn
    check_undo(undo, probe)
    target = fn
    tool = name or target.__name__
    signature = inspect.signature(target)

    def journaled(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return undoable_call(
            tool, dict(bound.arguments), undo=undo, before=before, after=after, probe=probe
        )

    if inspect.iscoroutinefunction(target):

        @functools.wraps(target)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            with journaled(args, kwargs) as done:
                result = await target(*args, **kwargs)
                done(result)
            return result

        return goex_function_tool(acall, name=tool, description=description)

    @functools.wraps(target)
    def call(*args: Any, **kwargs: Any) -> Any:
        with journaled(args, kwargs) as done:
            result = target(*args, **kwargs)
            done(result)
        return result

    return goex_function_tool(call, name=tool, description=description)


def _scope() -> AbstractContextManager[Any]:
    """Journal inside the step the span handler made for the current tool call, if any."""
    span = active_span_id.get()
    if span is not None:
        for handler in reversed(installed_handlers()):
            if handler.tracker.knows(span):
                return handler.tracker.scope(span)
    return nullcontext()
