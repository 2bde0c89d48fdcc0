"""The package's public names, pinned (the partner-package `test_imports` shape)."""

from __future__ import annotations

import llama_index.tools.goex as package

EXPECTED_ALL = [
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


def test_llama_index_tools_goex_exports_its_integration_classes_only() -> None:
    assert sorted(package.__all__) == sorted(EXPECTED_ALL)
    assert all(hasattr(package, name) for name in package.__all__)


def test_llama_index_tools_goex_test_llm_is_importable_from_its_module() -> None:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.tools.goex.scripted import scripted_llm

    assert not hasattr(package, "scripted_llm")
    reply = scripted_llm(["done"]).chat([ChatMessage(role="user", content="hi")])
    assert reply.message.content == "done"
