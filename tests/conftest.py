"""Shared fixtures: real SQLite journals and real PostgreSQL databases made per test."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from goex_tools import Journal
from goex_tools.redaction import redactor

# The engine scripts/start-container-engine.sh serves, when DOCKER_HOST names none and no
# Docker engine has the default socket (`bash scripts/test.sh` sets DOCKER_HOST itself).
ENGINE_SOCKET = "/run/goex-podman/podman.sock"
_NO_ENGINE_NAMED = "DOCKER_HOST" not in os.environ and not os.path.exists("/var/run/docker.sock")
if _NO_ENGINE_NAMED and os.path.exists(ENGINE_SOCKET):
    os.environ["DOCKER_HOST"] = f"unix://{ENGINE_SOCKET}"

POSTGRES_URL = os.environ.get(
    "GOEX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolated_redactor() -> Iterator[None]:
    """Secrets a test registers are masked for that test only: the redactor is process-wide,
    and one test's secret (say `...0123456789...`) would mask another test's data."""
    saved = redactor._masker
    redactor._masker = copy.copy(saved)
    yield
    redactor._masker = saved


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"goex_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} does not answer ({exc.orig}); run the tests with "
            f"`bash scripts/test.sh`, which starts one, or set GOEX_TEST_POSTGRES_URL"
        )
    url = sa.engine.make_url(POSTGRES_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def sqlite_journal_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/journal.db"


@pytest.fixture(params=["sqlite", "postgres"])
def journal_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def journal(journal_url: str) -> Iterator[Journal]:
    store = Journal(journal_url)
    yield store
    store.close()
