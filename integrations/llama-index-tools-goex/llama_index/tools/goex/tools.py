"""LlamaIndex `FunctionTool`s whose effects go through goex.

`goex_function_tool(fn)` for a function that journals its own effects (a goex domain tool,
a `@goex.reversible` function); `reversible_function_tool(fn_or_tool, undo=...)` to make any
function or FunctionTool reversible. Called by an agent under an installed `GoexSpanHandler`,
their steps become children of the tool call's step, in the agent run's goex run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.tools import BaseTool, FunctionTool
from llama_index.tools.goex.handler import installed_handlers

from goex_tools.model import JSONDict
from goex_tools.reversible import reversible


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
    """A tool from a function that journals its own effects; schema from its signature."""

    @functools.wraps(fn)
    def in_scope(*args: Any, **kw: Any) -> Any:
        with _scope():
            return fn(*args, **kw)

    tool = GoexFunctionTool.from_defaults(
        fn=in_scope, name=name or fn.__name__, description=description, **kwargs
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
    """Make a function (or a sync FunctionTool) reversible: each call is journaled with its undo.

    Arguments as in `goex_tools.reversible`: `undo` (an importable function or a registered
    kind; None for a one-way action, journaled as irreversible so policy can refuse it),
    `before`, `after` and `probe`.
    """
    if isinstance(fn, FunctionTool):
        if fn.fn is None:
            raise TypeError(f"tool {fn.metadata.name!r} has no sync function to make reversible")
        name = name or fn.metadata.name
        description = description or fn.metadata.description
        fn = fn.fn
    journaled = reversible(
        fn,
        undo=undo,
        before=before,
        after=after,
        probe=probe,
        irreversible=undo is None,
        tool=name or fn.__name__,
    )
    return goex_function_tool(journaled, name=name, description=description)


def _scope() -> AbstractContextManager[Any]:
    """Journal inside the step the span handler made for the current tool call, if any."""
    span = active_span_id.get()
    if span is not None:
        for handler in reversed(installed_handlers()):
            if handler.tracker.knows(span):
                return handler.tracker.scope(span)
    return nullcontext()
