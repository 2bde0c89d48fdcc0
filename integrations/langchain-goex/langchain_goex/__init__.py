"""LangChain integration of goex-tools: reversible tools and a journaling callback handler."""

from langchain_goex.callbacks import GOEX_METADATA_KEY, GoexCallbackHandler
from langchain_goex.chat_models import ScriptedChatModel
from langchain_goex.toolkits import GoexToolkit
from langchain_goex.tools import GoexTool, goex_tool, reversible_tool

__all__ = [
    "GOEX_METADATA_KEY",
    "GoexCallbackHandler",
    "GoexTool",
    "GoexToolkit",
    "ScriptedChatModel",
    "goex_tool",
    "reversible_tool",
]
