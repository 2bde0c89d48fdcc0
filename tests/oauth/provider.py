"""oidc-provider (npm, a certified OpenID Connect implementation) on 127.0.0.1, and a browser
for its sign-in pages: `provider.mjs` completes login and consent for the account `alice`,
so the browser follows redirects and submits the device flow's forms."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.http.test_secrets import closed_port
from tests.support.npm import packages
from tests.support.service_process import running

SERVICE_SECRET = "svc-secret-5d1e7a9c3b2f4e60"
RESOURCE_SECRET = "rs-secret-0a9b8c7d6e5f4a3b"


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen[bytes]

    def introspect(self, token: str) -> dict[str, Any]:
        """What the provider says of a token (as a resource server asks it)."""
        answer = httpx.post(
            f"{self.issuer}/token/introspection",
            data={"token": token},
            auth=("resource-server", RESOURCE_SECRET),
            timeout=10,
        )
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    def active(self, token: str) -> bool:
        return bool(token) and bool(self.introspect(token).get("active"))

    def revoke(self, token: str) -> None:
        """Revoke a token (a refresh token: its whole grant) as a person would."""
        answer = httpx.post(
            f"{self.issuer}/token/revocation",
            data={"token": token, "client_id": "goex-cli"},
            timeout=10,
        )
        answer.raise_for_status()


def start(log: Path, access_ttl: int) -> Iterator[Provider]:
    root = packages().parent
    shutil.copy(Path(__file__).parent / "provider.mjs", root / "provider.mjs")
    port = closed_port()
    command = ["node", "provider.mjs", str(port), str(access_ttl)]
    with running(command, log=log, ready=b"listening", timeout=60, cwd=root) as process:
        yield Provider(f"http://127.0.0.1:{port}", process)


def browse(url: str) -> httpx.Response:
    """A person signing in at `url`: follow redirects, submit each form the pages show
    (the device flow's confirmation), until a page has none."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(url)
        for _ in range(5):
            form = re.search(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", page.text, re.S)
            if form is None:
                return page
            fields = dict(
                re.findall(r"<input[^>]*name=\"([^\"]+)\"[^>]*value=\"([^\"]*)\"", form.group(2))
            )
            page = browser.post(httpx.URL(str(page.url)).join(form.group(1)), data=fields)
        return page
