"""nginx (Debian's) as a reverse proxy on 127.0.0.1, normalising paths as nginx does.

nginx decodes `%XX` escapes, resolves `.` and `..` segments and merges repeated slashes
before it picks a location, and `proxy_pass` with a URI sends that normal form on: so
`/x/%2e%2e/emails` and `//emails` reach the service behind it as `/emails`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    merge_slashes on;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass {upstream}/; }}
    }}
}}
"""


class Nginx:
    """A throw-away nginx proxying to `upstream` (a URL like http://127.0.0.1:8000)."""

    def __init__(self, upstream: str, root: Path) -> None:
        self.root = root
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "nginx.conf").write_text(
            CONFIG.format(root=root, port=self.port, upstream=upstream.rstrip("/"))
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        self._process = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf"), "-e", "stderr"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"nginx exited: {error}")
            try:
                httpx.get(f"{self.url}/items", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not answer within 10 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
