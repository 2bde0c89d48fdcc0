"""Fixtures: the real CRUD service on 127.0.0.1, its bearer token as a symbolic secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from goex_tools import Journal
from goex_tools.domains.http import HttpTool, UndoRules
from tests.http.service import Service

TOKEN = "tok-7f3a9c2e51d84b06a1e2"  # the secret value the model must never see
AUTH = {"Authorization": "Bearer {{secret:items}}"}


@pytest.fixture(scope="session")
def running_service() -> Iterator[Service]:
    service = Service(token=TOKEN).start()
    yield service
    service.stop()


@pytest.fixture
def service(running_service: Service, secret_env: None) -> Service:
    """The service, emptied; the token is known as `{{secret:items}}`, bound to 127.0.0.1."""
    running_service.state.reset()
    return running_service


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOEX_SECRET_ITEMS", TOKEN)
    monkeypatch.setenv("GOEX_SECRET_ITEMS_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))


@pytest.fixture
def sqlite_journal(sqlite_journal_url: str) -> Iterator[Journal]:
    store = Journal(sqlite_journal_url)
    yield store
    store.close()


def registered_rules(base: str) -> UndoRules:
    """Registered pairs for the service (trust level 1)."""
    return (
        UndoRules()
        .create(f"{base}/items", item_url=f"{base}/items/{{item_id}}")
        .update(f"{base}/items/{{item_id}}")
        .delete(f"{base}/items/{{item_id}}")
        .irreversible("POST", f"{base}/emails")
    )


@pytest.fixture
def api(service: Service) -> HttpTool:
    return HttpTool(registered_rules(service.url))


def state(service: Service) -> dict[str, Any]:
    """The service's complete state, read over HTTP."""
    return httpx.get(f"{service.url}/_state").json()  # type: ignore[no-any-return]


def seed(service: Service, *items: dict[str, Any]) -> None:
    """Items created outside any run (the world before the agent)."""
    for item in items:
        response = httpx.post(
            f"{service.url}/items", json=item, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        response.raise_for_status()
