"""Against a third-party REST server: json-server (npm), whose whole database is one file.

The server is installed from the npm registry on first use into a cache directory
(`GOEX_JSON_SERVER_CACHE`, default ~/.cache/goex-tools/json-server-VERSION), or
`GOEX_JSON_SERVER` names an installed `json-server` binary. Without Node.js and npm, or when
the registry cannot be reached within INSTALL_TIMEOUT, the test skips and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
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
INSTALL_TIMEOUT = 90  # seconds; npm alone gives up sooner (--fetch-timeout, --fetch-retries)
DB = {
    "items": [{"id": 1, "name": "one", "tags": ["a"]}, {"id": 2, "name": "two", "tags": []}],
    "notes": [{"id": 1, "itemId": 1, "text": "first"}],
}


def json_server_binary() -> str:
    configured = os.environ.get("GOEX_JSON_SERVER")
    if configured:
        return configured
    cache = Path(
        os.environ.get("GOEX_JSON_SERVER_CACHE")
        or Path.home() / ".cache" / "goex-tools" / f"json-server-{VERSION}"
    )
    binary = cache / "node_modules" / ".bin" / "json-server"
    if binary.exists():
        return str(binary)
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip(
            "json-server needs Node.js and npm (apt-get install nodejs npm), "
            "or GOEX_JSON_SERVER naming a json-server binary"
        )
    install(npm, cache)
    return str(binary)


def install(npm: str, cache: Path) -> None:
    """`npm install json-server` into a fresh directory, moved into place only once complete;
    skip if npm fails (offline) or is still at it after INSTALL_TIMEOUT."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{cache.name}.", dir=cache.parent))
    log = staging / "npm.log"
    command = [
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        "--fetch-retries=1",
        "--fetch-timeout=15000",
        "--prefix",
        str(staging),
        f"json-server@{VERSION}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that a timeout ends npm and whatever it started
        )
        try:
            code: int | None = process.wait(timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    if code != 0:
        lines = log.read_text(errors="replace").splitlines()
        said = " | ".join([line for line in lines if "error" in line.lower()][:3] or lines[-3:])
        shutil.rmtree(staging, ignore_errors=True)
        why = f"timed out after {INSTALL_TIMEOUT} s" if code is None else f"exit code {code}"
        pytest.skip(f"npm could not install json-server@{VERSION} (offline?): {why}: {said}")
    log.unlink()
    if cache.exists() and not (cache / "node_modules" / ".bin" / "json-server").exists():
        shutil.rmtree(cache)  # an incomplete install of an older version of this test
    try:
        staging.rename(cache)
    except OSError:  # another process installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "db.json"
    db.write_text(json.dumps(DB))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log = tmp_path / "json-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [json_server_binary(), "--host", "127.0.0.1", "--port", str(port), str(db)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/db", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                pytest.fail(f"json-server did not start: {log.read_text(errors='replace')!r}")
            time.sleep(0.1)
    yield url, db
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
