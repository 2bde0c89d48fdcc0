"""The main demo (`scripts/demo.py`, what `bash scripts/demo.sh` runs), as a user runs it:
offline with the scripted model, and with a real model client (langchain-openai) against an
OpenAI-compatible server on 127.0.0.1 (OpenAI itself cannot be reached from here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace
from typing import Any

import pytest

import goex_tools as goex
from tests.integrations.conftest import REPO, load_demo
from tests.integrations.openai_server import ScriptedOpenAIServer

MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GOEX_DEMO_MODEL")


def run_demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in MODEL_ENV}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), *args],
        env={**clean, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def assert_restored(output: str) -> None:
    for part in ("files", "tables", "service"):
        assert f"{part}: restored exactly" in output
    assert "DIFFERS" not in output
    assert "undid 1 step(s) in this rollback; 1 of the run's 7 effect(s) undone so far" in output
    assert "undid 6 step(s) in this rollback; 7 of the run's 7 effect(s) undone so far" in output


def test_demo_runs_offline_and_restores_everything() -> None:
    done = run_demo()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "model: scripted (offline" in done.stdout
    assert "agent: The shop is ready for the spring sale." in done.stdout
    assert_restored(done.stdout)


def demo_script(first_request: dict[str, Any]) -> list[Any]:
    """The demo's own script, aimed at the service URL the demo told the model about."""
    system = first_request["messages"][0]
    assert system["role"] == "system"
    url = re.search(r"catalog service is at (http://127\.0\.0\.1:\d+)", system["content"])
    assert url is not None, system
    world = SimpleNamespace(service=SimpleNamespace(url=url.group(1)))
    turns: list[Any] = load_demo().DemoWorld.script(world)
    return turns


def test_demo_uses_a_real_model_client_at_an_openai_compatible_url() -> None:
    pytest.importorskip("langchain_openai")
    server = ScriptedOpenAIServer(demo_script)
    try:
        secret = "sk-goex-test-7f3a9c"  # the key a hosted server would check
        done = run_demo(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=secret,
                        GOEX_DEMO_MODEL="local-model")  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"model: local-model at {server.base_url}" in done.stdout
    assert_restored(done.stdout)
    assert secret not in done.stdout + done.stderr
    assert len(server.requests) == 6  # five turns of tool calls, then the answer
    for headers, body in server.requests:
        assert headers["authorization"] == f"Bearer {secret}"
        assert body["model"] == "local-model"
        tools = {t["function"]["name"] for t in body["tools"]}
        assert {"write_file", "edit_file", "run_shell", "run_sql", "http_request"} <= tools
    last_messages = server.requests[-1][1]["messages"]
    tool_results = [m for m in last_messages if m["role"] == "tool"]
    assert len(tool_results) == 7 and all("error" not in m["content"][:20] for m in tool_results)


def test_an_openai_compatible_url_alone_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constructing the real model with no key set (a local server): nothing is sent yet."""
    pytest.importorskip("langchain_openai")
    demo = load_demo()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    world = SimpleNamespace(script=lambda: ["scripted"])
    model = demo.chat_model(world)
    assert type(model).__name__ == "ChatOpenAI"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.openai_api_key.get_secret_value() == demo.LOCAL_SERVER_KEY
    assert type(demo.chat_model(world, scripted=True)).__name__ == "ScriptedChatModel"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert type(demo.chat_model(world)).__name__ == "ScriptedChatModel"


def test_without_langchain_the_demo_runs_langgraphs_agent(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bash scripts/demo.sh` installs langgraph but maybe not `langchain`: the demo then
    uses LangGraph's prebuilt loop, without a deprecation warning in the user's face."""
    from langchain_goex import GoexCallbackHandler, GoexToolkit
    from langchain_goex.chat_models import ScriptedChatModel

    demo = load_demo()
    monkeypatch.setitem(sys.modules, "langchain.agents", None)  # import fails
    tools = GoexToolkit(workspace=world.workspace, database=world.database, http=world.http)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = demo.make_agent(ScriptedChatModel(script=world.script()), tools.get_tools(), world)
    assert type(agent).__name__ == "CompiledStateGraph"
    before = world.snapshot()
    handler = GoexCallbackHandler(journal=world.journal)
    agent.invoke({"messages": [("user", demo.TASK)]}, {"callbacks": [handler]})
    run_id = handler.last_run_id
    assert run_id is not None and world.snapshot() != before
    assert len([s for s in world.journal.steps(run_id) if s.parent_id]) == 7
    goex.rollback(run_id, journal=world.journal)
    assert world.snapshot() == before
