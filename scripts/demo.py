"""The main demo: an agent changes files, a database and a web service; then it is all undone.

    .venv/bin/python scripts/demo.py        (or: bash scripts/demo.sh)

A LangChain agent (`create_agent`, the framework's own loop) gets goex's reversible tools over
a temporary workspace, an SQLite database and a local HTTP service. It works through its
task, the demo prints every step with what it changed, undoes the last step, then the whole
run, and checks that files, every table row and the service's state are exactly as before.

Offline by default: the model is scripted (it emits real tool calls). The same demo runs with
a real model (`pip install langchain-openai`) when either is set:

    OPENAI_API_KEY     OpenAI itself (or any server that wants this key)
    OPENAI_BASE_URL    an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 (Ollama),
                       a vLLM or LiteLLM server; it may need no key
    GOEX_DEMO_MODEL    the model's name (default gpt-4o-mini)

`--scripted` keeps the scripted model whatever is set. The demo's world (`DemoWorld`) is also
what the notebooks in notebooks/ use.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console

import goex_tools as goex
from goex_tools import notebook
from goex_tools.domains.fs import Workspace
from goex_tools.domains.http import HttpTool, UndoRules
from goex_tools.redaction import redact

TASK = (
    "Prepare the shop for the spring sale: write a short sale plan to notes/sale.md, turn "
    "debug off in config.toml, mark TODOs in README.md as done, promote customer 2 to the "
    "gold tier and remove cancelled orders, add a 'gift card' item (price 25) to the catalog "
    "service and delete the discontinued item 1, and remove the old log file."
)
LOCAL_SERVER_KEY = "unused"  # sent to an OPENAI_BASE_URL server when OPENAI_API_KEY is unset
console = Console()


class ItemsService:
    """A small JSON catalog on 127.0.0.1: /items and /items/{id} (GET, POST, PUT, DELETE)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = {item["id"]: item for item in items}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> ItemsService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def state(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.items[k] for k in sorted(self.items)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}") if length else {}

            def _item_id(self) -> int | None:
                parts = self.path.strip("/").split("/")
                return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None

            def do_GET(self) -> None:
                with service.lock:
                    if self.path.rstrip("/") == "/items":
                        return self._reply(200, [service.items[k] for k in sorted(service.items)])
                    item = service.items.get(self._item_id() or -1)
                return self._reply(200, item) if item else self._reply(404, {"detail": "no item"})

            def do_POST(self) -> None:
                body = self._body()
                with service.lock:
                    new_id = body.get("id") or max(service.items, default=0) + 1
                    service.items[new_id] = {**body, "id": new_id}
                    self._reply(201, service.items[new_id])

            def do_PUT(self) -> None:
                item_id, body = self._item_id(), self._body()
                if item_id is None:
                    return self._reply(404, {"detail": "no item"})
                with service.lock:
                    service.items[item_id] = {**body, "id": item_id}
                    return self._reply(200, service.items[item_id])

            def do_DELETE(self) -> None:
                with service.lock:
                    item = service.items.pop(self._item_id() or -1, None)
                return self._reply(204) if item else self._reply(404, {"detail": "no item"})

        return Handler


class DemoWorld:
    """A temporary workspace, SQLite database and HTTP service, with a journal of its own."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="goex-demo-"))
        self.root = self.dir / "workspace"
        self.root.mkdir()
        for name, text in {
            "README.md": "# Shop\n\nTODO: spring sale\nTODO: new catalog\n",
            "config.toml": "[shop]\nname = 'demo'\ndebug = true\n",
            "old.log": "2024-01-01 started\n" * 3,
        }.items():
            (self.root / name).write_text(text)
        self.db_path = self.dir / "shop.db"
        self.database = f"sqlite:///{self.db_path}"
        with sqlite3.connect(self.db_path) as db:
            db.executescript(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, tier TEXT);"
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT);"
                "INSERT INTO customers VALUES (1, 'Ada', 'silver'), (2, 'Grace', 'silver');"
                "INSERT INTO orders VALUES (1, 1, 'paid'), (2, 2, 'cancelled'), (3, 2, 'paid'),"
                " (4, 1, 'cancelled');"
            )
        db.close()
        self.service = ItemsService(
            [{"id": 1, "name": "paper planner", "price": 12}, {"id": 2, "name": "pen", "price": 3}]
        ).start()
        base = self.service.url
        self.rules = (
            UndoRules()
            .create(f"{base}/items", item_url=f"{base}/items/{{item_id}}")
            .update(f"{base}/items/{{item_id}}")
            .delete(f"{base}/items/{{item_id}}")
        )
        self.sandbox = "bwrap" if shutil.which("bwrap") else "none"
        self.workspace = Workspace(self.root, store=self.dir / "store", sandbox=self.sandbox)
        self.http = HttpTool(self.rules)
        self.journal = goex.Journal(f"sqlite:///{self.dir / 'journal.db'}")

    def snapshot(self) -> dict[str, Any]:
        """The complete state: every file entry, every row of every table, the service."""
        with sqlite3.connect(self.db_path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            rows = {t: db.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
        db.close()
        files = {path: entry.model_dump() for path, entry in self.workspace.manifest().items()}
        return {"files": files, "tables": rows, "service": self.service.state()}

    def script(self) -> list[Any]:
        """What the scripted model does: tool calls turn by turn, then its answer."""
        base = self.service.url
        turns: list[Any] = [
            [
                ("write_file", {"path": "notes/sale.md", "content": "# Spring sale\n-20%\n"}),
                ("edit_file", {"path": "config.toml", "old": "debug = true",
                               "new": "debug = false"}),
            ],
            [("run_shell", {"command": "sed -i 's/^TODO:/DONE:/' README.md"})],
            [("run_sql", {"sql": "UPDATE customers SET tier = 'gold' WHERE id = 2; "
                                 "DELETE FROM orders WHERE status = 'cancelled'"})],
            [
                ("http_request", {"method": "POST", "url": f"{base}/items",
                                  "body": {"name": "gift card", "price": 25}}),
                ("http_request", {"method": "DELETE", "url": f"{base}/items/1"}),
            ],
            [("delete_path", {"path": "old.log"})],
            "The shop is ready for the spring sale.",
        ]  # fmt: skip
        return turns

    def briefing(self) -> str:
        """What a real model needs to know to do the task (the scripted one knows its script)."""
        return (
            "You act on a small shop through your tools. File paths are relative to the "
            "workspace. The SQLite database has the tables customers(id, name, tier) and "
            f"orders(id, customer_id, status). The catalog service is at {self.service.url}: "
            "GET/POST /items, GET/PUT/DELETE /items/{id}, JSON bodies with name and price."
        )

    def close(self) -> None:
        self.service.stop()
        self.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def chat_model(world: DemoWorld, *, scripted: bool = False) -> Any:
    """A real model if OPENAI_API_KEY or OPENAI_BASE_URL is set (and not `scripted`), else
    the scripted one."""
    key, base_url = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
    if not scripted and (key or base_url):
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            sys.exit(
                "OPENAI_API_KEY or OPENAI_BASE_URL is set: `pip install langchain-openai` to "
                "use a real model, or run with --scripted"
            )
        return ChatOpenAI(
            model=os.environ.get("GOEX_DEMO_MODEL", "gpt-4o-mini"),
            base_url=base_url or None,
            api_key=key or LOCAL_SERVER_KEY,  # a local server may want no key at all
            temperature=0,
        )
    from langchain_goex.chat_models import ScriptedChatModel

    return ScriptedChatModel(script=world.script())


def make_agent(model: Any, tools: list[Any], world: DemoWorld) -> Any:
    """LangChain's `create_agent`, or LangGraph's prebuilt agent where `langchain` is absent."""
    prompt = world.briefing()
    try:
        from langchain.agents import create_agent
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        with warnings.catch_warnings():  # "moved to langchain.agents": the same loop
            warnings.simplefilter("ignore", DeprecationWarning)
            return create_react_agent(model, tools, prompt=prompt)
    return create_agent(model, tools, system_prompt=prompt)


def describe(model: Any) -> str:
    """Which model the agent uses (never its key)."""
    name = getattr(model, "model_name", None)
    if name is None:
        return "scripted (offline; set OPENAI_API_KEY or OPENAI_BASE_URL for a real model)"
    base = getattr(model, "openai_api_base", None)
    return f"{name} at {base}" if base else f"{name} (OpenAI)"


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A person's summary of the differences between two snapshots."""
    lines = []
    for path in sorted(set(before["files"]) | set(after["files"])):
        old, new = before["files"].get(path), after["files"].get(path)
        if old != new:
            what = "added" if old is None else "deleted" if new is None else "modified"
            lines.append(f"file {path}: {what}")
    for table in sorted(before["tables"]):
        old_rows, new_rows = set(before["tables"][table]), set(after["tables"][table])
        lines += [f"table {table}: - {row}" for row in sorted(old_rows - new_rows)]
        lines += [f"table {table}: + {row}" for row in sorted(new_rows - old_rows)]
    if before["service"] != after["service"]:
        lines.append(f"service items: {before['service']} -> {after['service']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from langchain_goex import GoexCallbackHandler, GoexToolkit

    args = argv if argv is not None else sys.argv[1:]
    unknown = [a for a in args if a != "--scripted"]
    if unknown:
        sys.exit(f"usage: demo.py [--scripted] (unknown: {' '.join(unknown)})")
    world = DemoWorld()
    try:
        before = world.snapshot()
        tools = GoexToolkit(
            workspace=world.workspace, database=world.database, http=world.http
        ).get_tools()
        handler = GoexCallbackHandler(journal=world.journal)
        model = chat_model(world, scripted="--scripted" in args)
        agent = make_agent(model, tools, world)
        run_id = str(uuid.uuid4())
        console.rule("[bold]the agent works")
        console.print(f"model: {describe(model)}")
        console.print(f"task: {TASK}")
        stopped = False
        try:
            result = agent.invoke(
                {"messages": [("user", TASK)]},
                config={"callbacks": [handler], "run_id": run_id, "recursion_limit": 40},
            )
            console.print(f"agent: {result['messages'][-1].content}")
        except Exception as exc:  # a real model can fail: network, quota, a bad answer
            stopped = True
            console.print(f"[red]the agent stopped[/red]: {type(exc).__name__}: {redact(str(exc))}")
        if run_id not in handler.run_ids:
            console.print("the agent called no tool: nothing changed, nothing to undo")
            return 1 if stopped else 0
        console.rule("[bold]what it did (journal)")
        console.print(notebook.show(run_id, journal=world.journal))
        console.rule("[bold]what changed")
        for line in changed(before, world.snapshot()):
            console.print(line)

        console.rule("[bold]undo the last step")
        console.print(notebook.rollback(run_id, steps=1, journal=world.journal).outcome())
        for line in changed(before, world.snapshot()):
            console.print(line)
        console.rule("[bold]undo the whole run")
        view = notebook.rollback(run_id, journal=world.journal)
        console.print(view)
        after = world.snapshot()
        for part in ("files", "tables", "service"):
            same = after[part] == before[part]
            mark = "[green]restored exactly[/green]" if same else "[red]DIFFERS[/red]"
            console.print(f"{part}: {mark}")
        console.print(f"(run {run_id}; the temporary journal and world are removed now)")
        return 0 if after == before and not view.error and not stopped else 1
    finally:
        world.close()


if __name__ == "__main__":
    sys.exit(main())
