"""Third-party REST services installed from PyPI (the `dev` extra), run on 127.0.0.1.

- Kinto (Mozilla): buckets > collections > records, groups; accounts with Basic auth;
  `data.last_modified` and ETags set by the server on every write; it publishes a
  Swagger 2.0 document at /v1/__api__.
- Jupyter Server: files and directories under /api/contents/{path}, token auth; it
  publishes a Swagger 2.0 document at /api/spec.yaml.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.http.test_secrets import closed_port

KINTO_PASSWORD = "k1nto-Adm1n/pass+word"  # the admin's; `Basic` credentials are the secret
KINTO_BASIC = base64.b64encode(f"admin:{KINTO_PASSWORD}".encode()).decode()
JUPYTER_TOKEN = "jup-6c1f0b9e2d47a8c35e90"


@dataclass
class Server:
    """A service process; `url` answers once it is up."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, command: list[str], url: str, probe: str, log: Path, **kw: Any) -> Server:
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **kw
            )
        server = cls(url, process, log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(probe, timeout=2).status_code < 500:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                server.stop()
                raise RuntimeError(f"{command[:3]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


KINTO = [sys.executable, "-c", "import sys; from kinto.__main__ import main; sys.exit(main())"]


def kinto(directory: Path) -> Iterator[Server]:
    """Kinto with its memory backend and the accounts plugin; the admin account exists."""
    port = closed_port()
    ini = directory / "kinto.ini"
    subprocess.run(
        [*KINTO, "init", "--ini", str(ini), "--backend", "memory", "--cache-backend", "memory"],
        check=True,
        capture_output=True,
        cwd=directory,
    )
    url = f"http://127.0.0.1:{port}/v1"
    command = [*KINTO, "start", "--ini", str(ini), "--port", str(port)]
    server = Server.start(command, url, f"{url}/", directory / "kinto.log", cwd=directory)
    try:
        httpx.put(
            f"{url}/accounts/admin", json={"data": {"password": KINTO_PASSWORD}}
        ).raise_for_status()
        yield server
    finally:
        server.stop()


def kinto_auth() -> dict[str, str]:
    """The admin's credentials, for the test's own calls (never the agent's)."""
    return {"Authorization": f"Basic {KINTO_BASIC}"}


def kinto_state(url: str) -> dict[str, Any]:
    """Kinto's whole state, read item by item: every bucket, collection, record, group and
    account, with its data and permissions."""
    client = httpx.Client(headers=kinto_auth(), timeout=30)

    def items(path: str) -> dict[str, Any]:
        listed = client.get(f"{url}{path}")
        listed.raise_for_status()
        found = {}
        for entry in listed.json()["data"]:
            item = client.get(f"{url}{path}/{entry['id']}")
            item.raise_for_status()
            found[entry["id"]] = item.json()
        return found

    state: dict[str, Any] = {"accounts": items("/accounts"), "buckets": {}}
    for bucket_id, bucket in items("/buckets").items():
        collections = {}
        for collection_id, collection in items(f"/buckets/{bucket_id}/collections").items():
            records = items(f"/buckets/{bucket_id}/collections/{collection_id}/records")
            collections[collection_id] = {**collection, "records": records}
        groups = items(f"/buckets/{bucket_id}/groups")
        state["buckets"][bucket_id] = {**bucket, "collections": collections, "groups": groups}
    client.close()
    return state


def jupyter(directory: Path) -> Iterator[Server]:
    """Jupyter Server over `directory/root`, token auth, deletes not sent to a trash."""
    root = directory / "root"
    root.mkdir()
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--allow-root",  # CI runs as root
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={JUPYTER_TOKEN}",
        "--FileContentsManager.delete_to_trash=False",
    ]
    env_home = directory / "home"
    env_home.mkdir()
    env = {"HOME": str(env_home), "PATH": "/usr/bin:/bin", "JUPYTER_NO_CONFIG": "1"}
    server = Server.start(command, url, f"{url}/api/status", directory / "jupyter.log", env=env)
    try:
        yield server
    finally:
        server.stop()


def tree(root: Path) -> dict[str, Any]:
    """Every file and directory under `root`: type, mode and content."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        mode = path.stat().st_mode & 0o777
        found[relative] = (
            ("dir", mode, None) if path.is_dir() else ("file", mode, path.read_bytes())
        )
    return found
