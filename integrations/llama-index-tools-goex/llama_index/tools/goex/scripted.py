"""`scripted_llm`: a function-calling LLM that plays a fixed script (tests, demos).

Each turn is a list of tool calls `(tool name, arguments)` or a final text answer. It is
LlamaIndex's own `MockFunctionCallingLLM` driven by the script, so agents (`FunctionAgent`,
`AgentWorkflow`) run their real loop over it, offline and deterministically. With
`replayable=True` the turn is chosen by the conversation (the number of assistant messages
in it so far): an agent resumed from an older saved `Context` gets the same answers again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM

Turn = str | list[tuple[str, dict[str, Any]]]


def scripted_llm(script: Sequence[Turn], *, replayable: bool = False) -> MockFunctionCallingLLM:
    """An LLM whose n-th chat answer (or, `replayable`, the answer after the n-th assistant
    message of the conversation) is the n-th turn of `script`."""
    turns = list(script)
    position = 0

    def answer(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        nonlocal position
        if replayable:
            position = sum(m.role == MessageRole.ASSISTANT for m in messages)
        if position >= len(turns):
            raise RuntimeError(f"the script has only {len(turns)} turns; none is left")
        turn = turns[position]
        position += 1
        if isinstance(turn, str):
            return ChatMessage(role=MessageRole.ASSISTANT, content=turn)
        bound = {tool.metadata.get_name() for tool in kwargs.get("tools") or []}
        unknown = sorted({name for name, _ in turn} - bound) if bound else []
        if unknown:
            raise ValueError(f"turn {position} calls tools the agent does not have: {unknown}")
        blocks: list[Any] = [
            ToolCallBlock(tool_call_id=f"call_{position}_{i}", tool_name=name, tool_kwargs=args)
            for i, (name, args) in enumerate(turn)
        ]
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)

    return MockFunctionCallingLLM(response_generator=answer)
