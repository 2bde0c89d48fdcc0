"""LangChain's standard tool tests (`langchain-tests`) over every toolkit tool and wrapper.

The standard tests cannot see a failing call (a tool error comes back as a string), so each
class also asserts that its example call, made as an agent makes it, succeeded, was
journaled (the call's step with its effects under it) and rolls back to the world before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool
from langchain_goex import GoexCallbackHandler, GoexToolkit, goex_tool, reversible_tool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

import goex_tools as goex
from goex_tools import StepStatus
from tests.integrations.actions import append_line, drop_last_line, write_text
from tests.integrations.conftest import load_demo


@tool(response_format="content_and_artifact")
def append_noted(path: str, line: str) -> tuple[str, dict[str, Any]]:
    """Append one line to a text file; the artifact says how long the file is now."""
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}", {"size": Path(path).stat().st_size}


Make = Callable[[Any], BaseTool]
Example = Callable[[Any], dict[str, Any]]


def toolkit_tool(name: str) -> Make:
    def make(world: Any) -> BaseTool:
        toolkit = GoexToolkit(workspace=world.workspace, database=world.database, http=world.http)
        return next(t for t in toolkit.get_tools() if t.name == name)

    return make


CASES: dict[str, tuple[Make, Example]] = {
    "read_file": (toolkit_tool("read_file"), lambda w: {"path": "README.md"}),
    "write_file": (
        toolkit_tool("write_file"),
        lambda w: {"path": "notes/sale.md", "content": "# Spring sale\n"},
    ),
    "edit_file": (
        toolkit_tool("edit_file"),
        lambda w: {"path": "config.toml", "old": "debug = true", "new": "debug = false"},
    ),
    "delete_path": (toolkit_tool("delete_path"), lambda w: {"path": "old.log"}),
    "move_path": (
        toolkit_tool("move_path"),
        lambda w: {"source": "old.log", "destination": "archive/old.log"},
    ),
    "make_dir": (toolkit_tool("make_dir"), lambda w: {"path": "archive/2024"}),
    "run_shell": (
        toolkit_tool("run_shell"),
        lambda w: {"command": "sed -i 's/^TODO:/DONE:/' README.md"},
    ),
    "run_sql": (
        toolkit_tool("run_sql"),
        lambda w: {"sql": "UPDATE customers SET tier = 'gold' WHERE id = 2"},
    ),
    "http_request": (
        toolkit_tool("http_request"),
        lambda w: {
            "method": "POST",
            "url": f"{w.service.url}/items",
            "headers": [{"name": "X-Request-Id", "value": "standard-test"}],
            "body": {"name": "gift card", "price": 25},
        },
    ),
    "goex_tool": (
        lambda w: goex_tool(write_text),
        lambda w: {"path": str(w.root / "report.txt"), "text": "summary\n"},
    ),
    "reversible_tool": (
        lambda w: reversible_tool(append_line, undo=drop_last_line),
        lambda w: {"path": str(w.root / "README.md"), "line": "appended"},
    ),
    "reversible_tool_with_artifact": (
        lambda w: reversible_tool(append_noted, undo=drop_last_line),
        lambda w: {"path": str(w.root / "README.md"), "line": "appended"},
    ),
}


class GoexToolCase:
    """One tool over a fresh demo world (workspace, SQLite database, HTTP service)."""

    case: str
    world: Any

    @pytest.fixture(autouse=True)
    def _world(
        self, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
    ) -> Iterator[None]:
        """A world per test; after a standard test that calls the tool, the call it made
        must have been journaled and have succeeded."""
        self.world = load_demo().DemoWorld()
        # calls made without a handler journal into runs of their own, in the world's journal
        monkeypatch.setenv("GOEX_JOURNAL_URL", self.world.journal.url)
        yield
        journal = self.world.journal
        steps = [s for run in journal.list_runs() for s in journal.steps(run.id)]
        self.world.close()
        if request.node.name.startswith(("test_invoke", "test_async_invoke")):
            assert steps, "the call made by the test was not journaled"
        assert {s.status for s in steps} <= {StepStatus.APPLIED, StepStatus.COMPENSATED}, (
            f"a call made by the test did not succeed: {[(s.tool, s.error) for s in steps]}"
        )

    @property
    def tool_constructor(self) -> BaseTool:
        return CASES[self.case][0](self.world)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return CASES[self.case][1](self.world)

    def test_example_call_succeeds_is_journaled_and_rolls_back(self, tool: BaseTool) -> None:
        before = self.world.snapshot()
        handler = GoexCallbackHandler(journal=self.world.journal)
        call = {"name": tool.name, "args": self.tool_invoke_params_example, "id": "call-1"}
        answer = tool.invoke({**call, "type": "tool_call"}, config={"callbacks": [handler]})
        assert isinstance(answer, ToolMessage)
        assert answer.status == "success", answer.content
        (run_id,) = handler.run_ids
        steps = self.world.journal.steps(run_id)
        assert {s.status for s in steps} == {StepStatus.APPLIED}
        call_step = steps[0]
        assert call_step.parent_id is None and call_step.tool == tool.name
        assert [s.parent_id for s in steps[1:]] and all(s.parent_id for s in steps[1:])
        goex.rollback(run_id, journal=self.world.journal)
        assert self.world.snapshot() == before


def _standard(case: str) -> None:
    """A unit-test and an integration-test class for `case`, named after it."""
    title = "".join(part.title() for part in case.split("_"))
    for suffix, standard in (("Unit", ToolsUnitTests), ("Integration", ToolsIntegrationTests)):
        name = f"Test{title}{suffix}"
        globals()[name] = type(name, (GoexToolCase, standard), {"case": case})


for _case in CASES:
    _standard(_case)
