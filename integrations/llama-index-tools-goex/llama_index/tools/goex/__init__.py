"""LlamaIndex integration of goex-tools: reversible FunctionTools and a journaling handler."""

from llama_index.tools.goex.base import GoexToolSpec
from llama_index.tools.goex.handler import GoexSpanHandler, ToolCallFailed, installed_handlers
from llama_index.tools.goex.scripted import scripted_llm
from llama_index.tools.goex.tools import (
    GoexFunctionTool,
    goex_function_tool,
    is_goex_tool,
    reversible_function_tool,
)

__all__ = [
    "GoexFunctionTool",
    "GoexSpanHandler",
    "GoexToolSpec",
    "ToolCallFailed",
    "goex_function_tool",
    "installed_handlers",
    "is_goex_tool",
    "reversible_function_tool",
    "scripted_llm",
]
