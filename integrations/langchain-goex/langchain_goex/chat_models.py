"""`ScriptedChatModel`: a tool-calling chat model that plays a fixed script (tests, demos).

Each turn is a list of tool calls `(tool name, arguments)` or a final text answer. It is a
real `BaseChatModel`: `bind_tools` works, so agent loops (`create_agent`, LangGraph) drive
it exactly as they drive a hosted model, offline and deterministically. With
`replayable=True` the turn is chosen by the conversation (the number of AI messages in it so
far), not by how often the model was called: a replay from an earlier checkpoint (LangGraph
time travel) gets the same answers again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

Turn = str | list[tuple[str, dict[str, Any]]]


class ScriptedChatModel(BaseChatModel):
    """Answers the n-th model call (or, `replayable`, the n-th AI message of the
    conversation) with the n-th turn of `script`."""

    script: list[Turn]
    replayable: bool = False
    _position: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "goex-scripted"

    @property
    def finished(self) -> bool:
        return self._position >= len(self.script)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.replayable:
            self._position = sum(isinstance(m, AIMessage) for m in messages)
        if self.finished:
            raise RuntimeError(f"the script has only {len(self.script)} turns; none is left")
        turn = self.script[self._position]
        self._position += 1
        bound = {tool["function"]["name"] for tool in kwargs.get("tools", [])}
        message = _message(turn, self._position, bound)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def _message(turn: Turn, number: int, bound: set[str]) -> AIMessage:
    if isinstance(turn, str):
        return AIMessage(content=turn)
    unknown = sorted({name for name, _ in turn} - bound) if bound else []
    if unknown:
        raise ValueError(f"turn {number} calls tools the agent does not have: {unknown}")
    calls = [
        {"name": name, "args": args, "id": f"call_{number}_{i}", "type": "tool_call"}
        for i, (name, args) in enumerate(turn)
    ]
    return AIMessage(content="", tool_calls=calls)
