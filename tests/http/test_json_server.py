"""Against a third-party REST server: json-server (npm), whose whole database is one file.

The server is installed from the npm registry on first use into a cache directory
(`GOEX_JSON_SERVER` may name an installed `json-server` binary instead).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal
from goex_tools.domains.http import HttpTool, UndoRules

VERSION = "0.17.4"
CACHE = Path.home() / ".cache" / "goex-tools" / f"json-server-{VERSION}"
DB = {
    "items": [{"id": 1, "name": "one", "tags": ["a"]}, {"id": 2, "name": "two", "tags": []}],
    "notes": [{"id": 1, "itemId": 1, "text": "first"}],
}


def json_server_binary() -> str:
    configured = os.environ.get("GOEX_JSON_SERVER")
    if configured:
        return configured
    binary = CACHE / "node_modules" / ".bin" / "json-server"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("json-server needs Node.js and npm (apt-get install nodejs npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(CACHE),
                f"json-server@{VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return str(binary)


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "db.json"
    db.write_text(json.dumps(DB))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [json_server_binary(), "--host", "127.0.0.1", "--port", str(port), "--quiet", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/db").raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(
                    f"json-server did not start: {process.stderr and process.stderr.read()!r}"
                )
            time.sleep(0.1)
    yield url, db
    process.terminate()
    process.wait(timeout=10)


def full_state(url: str, db: Path) -> tuple[Any, Any]:
    """What the server serves and what it keeps on disk."""
    return httpx.get(f"{url}/db").json(), json.loads(db.read_text())


def test_rollback_restores_json_server_exactly(
    json_server: tuple[str, Path], sqlite_journal: Journal
) -> None:
    url, db = json_server
    rules = (
        UndoRules()
        .create(f"{url}/items", item_url=f"{url}/items/{{id}}")
        .create(f"{url}/notes", item_url=f"{url}/notes/{{id}}")
        .update(f"{url}/items/{{id}}")
        .delete(f"{url}/items/{{id}}", recreate_method="POST", recreate_url=f"{url}/items")
    )
    api = HttpTool(rules)
    before = full_state(url, db)
    with goex.run(journal=sqlite_journal) as run:
        created = api.request("POST", f"{url}/items", {}, {"name": "three", "tags": ["new"]})
        api.request("POST", f"{url}/notes", {}, {"itemId": created.body["id"], "text": "n"})
        api.request("PUT", f"{url}/items/1", {}, {"name": "uno", "tags": []})
        api.request("PATCH", f"{url}/items/2", {}, {"tags": ["patched"]})
        api.request("DELETE", f"{url}/items/2", {})
    served, stored = full_state(url, db)
    assert served == stored
    assert served["items"] == [
        {"id": 1, "name": "uno", "tags": []},
        {"id": 3, "name": "three", "tags": ["new"]},
    ]

    report = goex.rollback(run.id, journal=sqlite_journal)

    assert report.complete and len(report.compensated) == 5
    assert full_state(url, db) == before
