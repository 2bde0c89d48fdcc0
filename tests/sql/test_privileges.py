"""run_sql as an ordinary PostgreSQL role: row capture must drop its triggers before COMMIT,
which needs the tables' owner, and its undo needs `session_replication_role`. Without them:
a clear error, nothing changed, and the journal says why."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal, RollbackFailed, StepStatus
from goex_tools.domains.sql import run_sql
from goex_tools.errors import GoexError
from tests.sql.conftest import dump_all, execute_script


@pytest.fixture
def role(postgres_url: str) -> Iterator[str]:
    """A login role with DML rights (and TRIGGER) on the shop's tables; dropped afterwards."""
    name = f"goex_app_{uuid.uuid4().hex[:8]}"
    execute_script(
        postgres_url,
        f"CREATE ROLE {name} LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO {name}; "
        f"GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON ALL TABLES IN SCHEMA public "
        f"TO {name}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name};",
    )
    yield name
    execute_script(postgres_url, f"DROP OWNED BY {name}; DROP ROLE {name};")


def as_role(url: str, role: str) -> str:
    return sa.engine.make_url(url).set(username=role).render_as_string(hide_password=False)


def test_capture_on_tables_this_role_does_not_own_runs_nothing(
    postgres_url: str, role: str, journal: Journal
) -> None:
    before = dump_all(postgres_url)
    with goex.run("app", journal=journal) as run, pytest.raises(GoexError, match="owner"):
        run_sql("DELETE FROM tags WHERE label = 'y'", as_role(postgres_url, role))
    assert dump_all(postgres_url) == before
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and not step.undoable
    assert "does not own public.audit, public.customers" in (step.error or "")
    assert "nothing was run" in (step.error or "")


def test_the_owner_captures_and_its_undo_needs_session_replication_role(
    postgres_url: str, role: str, journal: Journal
) -> None:
    tables = ("customers", "orders", "order_lines", "audit", "tags")
    execute_script(postgres_url, "".join(f"ALTER TABLE {t} OWNER TO {role};" for t in tables))
    before = dump_all(postgres_url)
    with goex.run("owner", journal=journal) as run:
        run_sql("DELETE FROM customers WHERE id = 2", as_role(postgres_url, role))
    changed = dump_all(postgres_url)
    assert changed != before
    with pytest.raises(RollbackFailed, match="session_replication_role"):
        goex.rollback(run.id, journal=journal)
    assert dump_all(postgres_url) == changed
    execute_script(postgres_url, f"GRANT SET ON PARAMETER session_replication_role TO {role};")
    assert goex.rollback(run.id, journal=journal).complete
    assert dump_all(postgres_url) == before
