"""The package's public names, pinned (the partner-package `test_imports` shape)."""

from __future__ import annotations

import langchain_goex

EXPECTED_ALL = [
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


def test_langchain_goex_exports_its_integration_classes_only() -> None:
    assert sorted(langchain_goex.__all__) == sorted(EXPECTED_ALL)
    assert all(hasattr(langchain_goex, name) for name in langchain_goex.__all__)


def test_langchain_goex_has_the_installed_version() -> None:
    from importlib.metadata import version

    assert langchain_goex.__version__ == version("langchain-goex")


def test_langchain_goex_test_model_is_importable_from_its_module() -> None:
    from langchain_goex.chat_models import ScriptedChatModel

    assert not hasattr(langchain_goex, "ScriptedChatModel")
    assert ScriptedChatModel(script=["done"]).invoke("hi").content == "done"
