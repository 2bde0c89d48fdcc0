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
from typing import Any, get_origin

from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.tools import BaseTool, FunctionTool
from llama_index.core.workflow import Context
from llama_index.tools.goex.handler import installed_handlers

from goex_tools.model import JSONDict
from goex_tools.toolset import check_undo, undoable_call
from goex_tools.tracker import RunTracker, call_in_thread


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

        @functools.wraps(fn)
        async def in_thread(*args: Any, **kw: Any) -> Any:
            span = active_span_id.get()
            tracker = _tracker(span)
            return await call_in_thread(tracker, span or "", in_scope, *args, **kw)

        kwargs["fn"] = in_scope
        kwargs["async_fn"] = in_thread
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
    injected = _injected(signature)

    def journaled(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = {k: v for k, v in bound.arguments.items() if k not in injected}
        return undoable_call(tool, given, undo=undo, before=before, after=after, probe=probe)

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


def _injected(signature: inspect.Signature) -> frozenset[str]:
    """Parameters LlamaIndex fills itself (the workflow `Context`): they reach the function
    but are neither journaled nor handed to `before` or the undo."""
    return frozenset(
        name
        for name, p in signature.parameters.items()
        if p.annotation is Context or get_origin(p.annotation) is Context
    )


def _tracker(span: str | None) -> RunTracker | None:
    """The tracker of the installed handler journaling the tool call `span`, if any."""
    if span is not None:
        for handler in reversed(installed_handlers()):
            if handler.tracker.knows(span):
                return handler.tracker
    return None


def _scope() -> AbstractContextManager[Any]:
    """Journal inside the step the span handler made for the current tool call, if any."""
    span = active_span_id.get()
    tracker = _tracker(span)
    return tracker.scope(span) if tracker is not None and span is not None else nullcontext()
