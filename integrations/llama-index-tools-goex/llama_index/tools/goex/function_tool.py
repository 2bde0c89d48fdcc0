"""`GoexFunctionTool`: the class that marks a LlamaIndex tool as journaling its own effects.

Apart from `tools`, which builds them, so that the span handler can tell them from other
tools without importing the module that imports it.
"""

from __future__ import annotations

from llama_index.core.tools import BaseTool, FunctionTool

__all__ = ["GoexFunctionTool", "is_goex_tool"]


class GoexFunctionTool(FunctionTool):
    """A FunctionTool whose function journals its effects with goex."""


def is_goex_tool(tool: BaseTool) -> bool:
    """Whether `tool` journals its own effects (the span handler then makes its call a
    container step instead of journaling it as irreversible)."""
    return isinstance(tool, GoexFunctionTool)
