"""The goex tools follow their frameworks' conventions: every argument described, schemas
that strict mode accepts, descriptions without docstring indentation, prefixed names for a
second toolset, wrappers that keep what the wrapped tool declared, a tool spec that answers
LlamaIndex's questions."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import BaseTool, ToolException, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_goex import GoexCallbackHandler, GoexToolkit, reversible_tool
from langchain_goex.chat_models import ScriptedChatModel
from llama_index.core.tools import FunctionTool, ToolMetadata
from llama_index.tools.goex import GoexFunctionTool, GoexToolSpec, reversible_function_tool
from pydantic import BaseModel, Field

import goex_tools as goex
from goex_tools import Journal, StepStatus
from tests.integrations.actions import add_line, drop_last_line
from tests.integrations.conftest import LLAMAINDEX_WARNINGS, manifest

pytestmark = LLAMAINDEX_WARNINGS


def all_tools(world: Any) -> tuple[list[BaseTool], list[FunctionTool]]:
    given = {"workspace": world.workspace, "database": world.database, "http": world.http}
    return GoexToolkit(**given).get_tools(), GoexToolSpec(**given).to_tool_list()


def objects(schema: Any) -> list[dict[str, Any]]:
    """Every object schema nested in `schema`."""
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            found.append(schema)
        for value in schema.values():
            found += objects(value)
    elif isinstance(schema, list):
        for value in schema:
            found += objects(value)
    return found


def test_every_toolkit_argument_has_a_description_in_both_frameworks(world: Any) -> None:
    langchain, llamaindex = all_tools(world)
    assert len(langchain) == len(llamaindex) == 9
    schemas = [convert_to_openai_tool(t)["function"] for t in langchain]
    schemas += [t.metadata.to_openai_tool()["function"] for t in llamaindex]
    for schema in schemas:
        for name, field in schema["parameters"]["properties"].items():
            assert field.get("description"), (schema["name"], name)
        assert "\n " not in schema["description"], schema["name"]  # no docstring indentation


def test_http_request_body_is_typed_as_json_and_headers_work_in_strict_mode(
    world: Any,
) -> None:
    langchain = all_tools(world)[0]
    (http,) = [t for t in langchain if t.name == "http_request"]
    strict = convert_to_openai_tool(http, strict=True)["function"]["parameters"]
    types = {branch.get("type") for branch in strict["properties"]["body"]["anyOf"]}
    assert types == {"object", "array", "string", "number", "boolean", "null"}
    headers = strict["properties"]["headers"]["anyOf"][0]["items"]
    assert set(headers["properties"]) == {"name", "value"}
    for schema in objects(strict):  # what OpenAI's strict mode asks of every object
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(schema["properties"])

    before = world.service.state()
    call = {
        "method": "POST",
        "url": f"{world.service.url}/items",
        "headers": [{"name": "X-Request-Id", "value": "42"}],
        "body": {"name": "gift card", "price": 25},
    }
    handler = GoexCallbackHandler(journal=world.journal)
    agent = create_agent(ScriptedChatModel(script=[[("http_request", call)], "done"]), [http])
    agent.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})
    (run_id,) = handler.run_ids
    request = next(s for s in world.journal.steps(run_id) if s.parent_id)
    assert request.status is StepStatus.APPLIED
    assert len(world.service.state()) == len(before) + 1
    goex.rollback(run_id, journal=world.journal)
    assert world.service.state() == before


def test_two_toolkits_with_prefixes_reach_their_own_databases(world: Any, tmp_path: Path) -> None:
    """Two databases for one agent: `billing_run_sql` and `shop_run_sql`, not `run_sql`
    twice; each changes its own database and the run rolls both back."""
    billing = tmp_path / "billing.db"
    with sqlite3.connect(billing) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, paid INTEGER)")
        db.execute("INSERT INTO invoices VALUES (1, 0)")
    db.close()
    tools = [
        *GoexToolkit(database=f"sqlite:///{billing}", prefix="billing_").get_tools(),
        *GoexToolkit(database=world.database, prefix="shop_").get_tools(),
    ]
    assert [t.name for t in tools] == ["billing_run_sql", "shop_run_sql"]
    before = (world.snapshot(), billing.read_bytes())
    script = [
        [("billing_run_sql", {"sql": "UPDATE invoices SET paid = 1 WHERE id = 1"})],
        [("shop_run_sql", {"sql": "UPDATE customers SET tier = 'gold' WHERE id = 1"})],
        "done",
    ]
    handler = GoexCallbackHandler(journal=world.journal)
    create_agent(ScriptedChatModel(script=script), tools).invoke(
        {"messages": [("user", "go")]}, config={"callbacks": [handler]}
    )
    with sqlite3.connect(billing) as db:
        assert db.execute("SELECT paid FROM invoices").fetchall() == [(1,)]
    db.close()
    (run_id,) = handler.run_ids
    calls = [s.tool for s in world.journal.steps(run_id) if s.parent_id is None]
    assert calls == ["billing_run_sql", "shop_run_sql"]
    goex.rollback(run_id, journal=world.journal)
    with sqlite3.connect(billing) as db:
        assert db.execute("SELECT paid FROM invoices").fetchall() == [(0,)]
    db.close()
    assert world.snapshot() == before[0]


class LineInput(BaseModel):
    path: str = Field(description="The file to append to.")
    line: str = Field(description="The line to append.")


@tool(args_schema=LineInput, response_format="content_and_artifact")
def append_with_size(path: str, line: str) -> tuple[str, dict[str, int]]:
    """Append one line to a text file; the artifact is the file's new size."""
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return "appended", {"size": Path(path).stat().st_size}


def refuse_politely(error: ToolException) -> str:
    return f"could not append: {error}"


@tool
def append_or_fail(path: str, line: str) -> str:
    """Append one line to a text file that must exist."""
    if not Path(path).exists():
        raise ToolException(f"{path} does not exist")
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return "appended"


def test_reversible_tool_keeps_args_schema_artifact_and_error_handling(
    journal: Journal, workspace: Path
) -> None:
    before = manifest(workspace)
    wrapped = reversible_tool(append_with_size, undo=drop_last_line)
    assert wrapped.args_schema is LineInput
    assert wrapped.response_format == "content_and_artifact"
    notes = str(workspace / "notes.txt")
    call = {"name": wrapped.name, "args": {"path": notes, "line": "x"}, "id": "1"}
    with goex.run("artifact", journal=journal) as appended:
        message = wrapped.invoke({**call, "type": "tool_call"})
    assert message.content == "appended"
    assert message.artifact == {"size": len("first line\nx\n")}

    failing = append_or_fail.model_copy(update={"handle_tool_error": refuse_politely})
    handled = reversible_tool(failing, undo=drop_last_line)
    assert handled.handle_tool_error is refuse_politely
    missing = str(workspace / "missing.txt")
    with goex.run("errors", journal=journal) as run:
        answer = handled.invoke({"path": missing, "line": "x"})
    assert answer == f"could not append: {missing} does not exist"
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.FAILED]
    goex.rollback(appended.id, journal=journal)
    assert manifest(workspace) == before


async def add_line_natively(path: str, line: str) -> str:
    """Append one line to a text file (its own coroutine)."""
    with Path(path).open("a") as fh:
        fh.write(line + " (async)\n")
    return "appended"


class AddLineInput(BaseModel):
    path: str = Field(description="The file to append to.")
    line: str = Field(description="The line to append.")


def test_reversible_function_tool_keeps_schema_return_direct_and_async_fn(
    journal: Journal, workspace: Path
) -> None:
    original = FunctionTool.from_defaults(
        fn=add_line,
        async_fn=add_line_natively,
        name="add_line",
        fn_schema=AddLineInput,
        return_direct=True,
    )
    wrapped = reversible_function_tool(original, undo=drop_last_line)
    assert isinstance(wrapped, GoexFunctionTool)
    assert wrapped.metadata.fn_schema is AddLineInput
    assert wrapped.metadata.return_direct is True
    assert wrapped.metadata.description == original.metadata.description
    notes = workspace / "notes.txt"
    with goex.run("both", journal=journal) as run:
        wrapped.call(path=str(notes), line="sync")
        asyncio.run(wrapped.acall(path=str(notes), line="awaited"))
    assert notes.read_text() == "first line\nsync\nawaited (async)\n"
    assert [s.status for s in journal.steps(run.id)] == [StepStatus.APPLIED] * 2
    goex.rollback(run.id, journal=journal)
    assert notes.read_text() == "first line\n"


def test_goex_tool_spec_lists_and_describes_only_the_configured_tools(world: Any) -> None:
    files = GoexToolSpec(workspace=world.workspace, shell=False)
    assert files.spec_functions == [
        "read_file", "write_file", "edit_file", "delete_path", "move_path", "make_dir"
    ]  # fmt: skip
    sql = GoexToolSpec(database=world.database, prefix="shop_")
    assert sql.spec_functions == ["shop_run_sql"]
    schema = sql.get_fn_schema_from_fn_name("shop_run_sql")
    assert schema is not None and set(schema.model_fields) == {"sql"}
    metadata = sql.get_metadata_from_fn_name("shop_run_sql")
    assert metadata is not None and metadata.name == "shop_run_sql"
    with pytest.raises(ValueError, match="no tool 'run_shell'"):
        files.get_metadata_from_fn_name("run_shell")
    with pytest.raises(ValueError, match="no tool 'run_sql'"):
        files.to_tool_list(spec_functions=["run_sql"])

    renamed = ToolMetadata(
        name="query_shop", description="Query the shop's database.", fn_schema=schema
    )
    (query,) = sql.to_tool_list(func_to_metadata_mapping={"shop_run_sql": renamed})
    assert isinstance(query, GoexFunctionTool) and query.metadata is renamed
    with goex.run("spec", journal=world.journal) as run:
        query.call(sql="UPDATE customers SET tier = 'gold' WHERE id = 1")
    assert [s.status for s in world.journal.steps(run.id)] == [StepStatus.APPLIED]
