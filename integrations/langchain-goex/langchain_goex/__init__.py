"""LangChain integration of goex-tools: reversible tools, a journaling callback handler, and
LangGraph time travel that rewinds the world with the agent (`rewind`, `fork`).

`ScriptedChatModel`, the scripted model of the tests and demos, is imported from
`langchain_goex.chat_models`.
"""

from importlib import metadata

from goex_tools.tracker import HandlerConflict
from langchain_goex.callbacks import GOEX_METADATA_KEY, GoexCallbackHandler
from langchain_goex.time_travel import fork, rewind
from langchain_goex.toolkits import GoexToolkit
from langchain_goex.tools import GoexTool, goex_tool, reversible_tool

try:
    __version__ = metadata.version(__package__ or __name__)
except metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = ""
del metadata

__all__ = [
    "GOEX_METADATA_KEY",
    "GoexCallbackHandler",
    "GoexTool",
    "GoexToolkit",
    "HandlerConflict",
    "__version__",
    "fork",
    "goex_tool",
    "reversible_tool",
    "rewind",
]
