"""LlamaIndex integration of goex-tools: reversible FunctionTools and a journaling handler.

`scripted_llm`, the scripted LLM of the tests and demos, is imported from
`llama_index.tools.goex.scripted`.
"""

from llama_index.tools.goex.base import GoexToolSpec
from llama_index.tools.goex.handler import GoexSpanHandler, ToolCallFailed, installed_handlers
from llama_index.tools.goex.tools import (
    GoexFunctionTool,
    goex_function_tool,
    is_goex_tool,
    reversible_function_tool,
)

from goex_tools.tracker import HandlerConflict

__all__ = [
    "GoexFunctionTool",
    "GoexSpanHandler",
    "GoexToolSpec",
    "HandlerConflict",
    "ToolCallFailed",
    "goex_function_tool",
    "installed_handlers",
    "is_goex_tool",
    "reversible_function_tool",
]
