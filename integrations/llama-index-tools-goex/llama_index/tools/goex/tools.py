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
from typing import Annotated, Any, get_args, get_origin

from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from llama_index.tools.goex.function_tool import GoexFunctionTool, is_goex_tool
from llama_index.tools.goex.handler import installed_handlers

from goex_tools.model import JSONDict
from goex_tools.toolset import check_undo, undoable_call
from goex_tools.tracker import RunTracker, call_in_thread

__all__ = [
    "GoexFunctionTool",
    "goex_function_tool",
    "is_goex_tool",
    "reversible_function_tool",
]


def goex_function_tool(
    fn: Callable[..., Any] | None = None,
    *,
    async_fn: Callable[..., Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    **kwargs: Any,
) -> GoexFunctionTool:
    """A tool from a function, a coroutine function or both (as `FunctionTool.from_defaults`
    takes them) that journal their own effects; schema from the signature. Other keyword
    arguments (`fn_schema`, `return_direct`, `tool_metadata`, ...) go to `from_defaults`.

    A sync function alone is awaited in a worker thread whose call is journaled when the
    thread ends, even if the awaiting agent was cancelled meanwhile.
    """
    if fn is not None and inspect.iscoroutinefunction(fn):
        fn, async_fn = None, fn
    base = fn or async_fn
    if base is None:
        raise TypeError("goex_function_tool needs fn, async_fn or both")
    name = name or base.__name__
    if fn is not None:
        sync_fn = fn

        @functools.wraps(sync_fn)
        def in_scope(*args: Any, **kw: Any) -> Any:
            with _scope():
                return sync_fn(*args, **kw)

        kwargs["fn"] = in_scope
        if async_fn is None:

            @functools.wraps(sync_fn)
            async def in_thread(*args: Any, **kw: Any) -> Any:
                span = active_span_id.get()
                tracker = _tracker(span)
                return await call_in_thread(tracker, span or "", in_scope, *args, **kw)

            kwargs["async_fn"] = in_thread
    if async_fn is not None:
        coroutine_fn = async_fn

        @functools.wraps(coroutine_fn)
        async def in_scope_async(*args: Any, **kw: Any) -> Any:
            with _scope():
                return await coroutine_fn(*args, **kw)

        kwargs["async_fn"] = in_scope_async
    if description is None and kwargs.get("tool_metadata") is None:
        description = _description(name, base)
    tool = GoexFunctionTool.from_defaults(name=name, description=description, **kwargs)
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
    `before(**arguments)`, `after(result, undo_kwargs)` and `probe`. A FunctionTool keeps
    its name, description, `fn_schema`, `return_direct`, partial parameters and its own
    `async_fn`. Arguments LlamaIndex injects (the workflow `Context`) reach the function
    but are not journaled.
    """
    check_undo(undo, probe)
    options: dict[str, Any] = {}
    if isinstance(fn, FunctionTool):
        real = fn.real_fn
        sync_fn = None if inspect.iscoroutinefunction(real) else real
        async_fn = _native_async(fn)
        options = {
            "fn_schema": fn.metadata.fn_schema,
            "return_direct": fn.metadata.return_direct,
            "partial_params": fn.partial_params or None,
        }
        name = name or fn.metadata.name
        description = description or fn.metadata.description
    elif inspect.iscoroutinefunction(fn):
        sync_fn, async_fn = None, fn
    else:
        sync_fn, async_fn = fn, None
    target = sync_fn or async_fn
    assert target is not None
    tool = name or target.__name__
    signature = inspect.signature(target)
    injected = _injected(signature)

    def journaled(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = {k: v for k, v in bound.arguments.items() if k not in injected}
        return undoable_call(tool, given, undo=undo, before=before, after=after, probe=probe)

    call = acall = None
    if sync_fn is not None:
        sync_target = sync_fn

        @functools.wraps(sync_target)
        def call(*args: Any, **kwargs: Any) -> Any:
            with journaled(args, kwargs) as done:
                result = sync_target(*args, **kwargs)
                done(result)
            return result

    if async_fn is not None:
        async_target = async_fn

        @functools.wraps(async_target)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            with journaled(args, kwargs) as done:
                result = await async_target(*args, **kwargs)
                done(result)
            return result

    return goex_function_tool(call, async_fn=acall, name=tool, description=description, **options)


def _native_async(tool: FunctionTool) -> Callable[..., Any] | None:
    """The tool's own coroutine function (not the thread LlamaIndex puts around a sync one)."""
    async_fn = tool.async_fn
    wrapped_sync = getattr(async_fn, "__qualname__", "").startswith("sync_to_async.")
    return None if wrapped_sync else async_fn


def _description(name: str, fn: Callable[..., Any]) -> str:
    """LlamaIndex's convention, `name(signature)` then the docstring, with the signature as
    a model reads it: no `Context`, no `Annotated` metadata."""
    signature = inspect.signature(fn)
    params = [
        p.replace(annotation=get_args(p.annotation)[0])
        if get_origin(p.annotation) is Annotated
        else p
        for p in signature.parameters.values()
        if p.name not in _injected(signature)
    ]
    plain = signature.replace(parameters=params, return_annotation=inspect.Signature.empty)
    text = f"{name}{plain}".replace("goex_tools.toolset.", "")
    doc = inspect.cleandoc(fn.__doc__ or "")
    return f"{text}\n{doc}" if doc else text


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
