"""LlamaIndex integration of goex-tools: reversible FunctionTools, a journaling handler, and
named points of a workflow to bring the world back to (`mark`, `rewind`).

`scripted_llm`, the scripted LLM of the tests and demos, is imported from
`llama_index.tools.goex.scripted`.
"""

from llama_index.tools.goex.base import GoexToolSpec
from llama_index.tools.goex.function_tool import GoexFunctionTool, is_goex_tool
from llama_index.tools.goex.handler import GoexSpanHandler, ToolCallFailed, installed_handlers
from llama_index.tools.goex.time_travel import mark, rewind
from llama_index.tools.goex.tools import goex_function_tool, reversible_function_tool

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
    "mark",
    "reversible_function_tool",
    "rewind",
]
