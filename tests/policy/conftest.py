"""Fixtures for the policy tests: a journal, a workspace, and policies written to real files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from goex_tools import Journal
from goex_tools.policy import Policy
from tests.http.service import Service
from tests.support.nginx import Nginx


@pytest.fixture
def sqlite_journal(tmp_path: Path) -> Iterator[Journal]:
    store = Journal(f"sqlite:///{tmp_path}/journal.db")
    yield store
    store.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "README.md").write_text("readme\n")
    return root


@pytest.fixture
def policy_file(tmp_path: Path) -> Callable[..., Policy]:
    """Write YAML text to a file and build the gate from it, as a user would."""

    def make(text: str, **options: object) -> Policy:
        path = tmp_path / "goex-policy.yaml"
        path.write_text(text)
        return Policy.from_file(path, **options)  # type: ignore[arg-type]

    return make


MYSQL_URL = os.environ.get("GOEX_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A new, empty MariaDB/MySQL database on the test server; dropped afterwards."""
    admin = sa.create_engine(MYSQL_URL)
    name = f"goex_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    yield sa.engine.make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """The real CRUD service of the HTTP tests, on 127.0.0.1."""
    running = Service().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def nginx(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """Debian's nginx in front of the service: it decodes, resolves dot segments and merges
    slashes before passing a request on, as real servers do."""
    proxy = Nginx(service.url, tmp_path_factory.mktemp("nginx")).start()
    yield proxy
    proxy.stop()
