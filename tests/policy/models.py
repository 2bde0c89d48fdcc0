"""A scripted LangChain chat model (langchain-core's own fake), and what it was asked."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage


class Prompts(BaseCallbackHandler):
    """Keeps the text of every prompt a chat model is sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.texts.extend("\n".join(str(m.content) for m in batch) for batch in messages)


def undo_model(*replies: str) -> tuple[FakeListChatModel, Prompts]:
    """A chat model answering `replies` in turn, and the record of its prompts."""
    prompts = Prompts()
    return FakeListChatModel(responses=list(replies), callbacks=[prompts]), prompts
