"""LLM-proposed undo: a scripted model's undo is tried in a test-bed before it is trusted.

A right undo is journaled as the step's compensation (`llm.sql`, `compensation_source: llm`)
and used by a real rollback; a wrong one is rejected and the action stays irreversible, so
the policy's `irreversible` verdict applies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, StepStatus
from goex_tools.domains.fs import Workspace
from goex_tools.domains.sql import run_sql
from goex_tools.policy import ApprovalRequest, Policy
from goex_tools.policy.llm_undo import LLMUndoProposer
from goex_tools.policy.testbed import roundtrip
from tests.policy.models import undo_model
from tests.policy.sqlstate import seed, state
from tests.policy.support import run_unversioned

MakePolicy = Callable[..., Policy]
ADD_COLUMN = "ALTER TABLE items ADD COLUMN note TEXT"
RIGHT = '{"undo": ["ALTER TABLE items DROP COLUMN note"], "explanation": "drop it again"}'
WRONG = '```json\n{"undo": ["UPDATE items SET note = NULL"], "explanation": "clear it"}\n```'


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/shop.db"
    seed(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/shop.db"
    else:
        url = str(request.getfixturevalue("pg_url"))
    seed(url)
    return url


def test_a_right_undo_is_accepted_journaled_and_used_by_rollback(
    db_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    model, prompts = undo_model(RIGHT)
    gate = policy_file(
        "default: allow\nirreversible: refuse\n", undo_proposer=LLMUndoProposer(model)
    )
    before = state(db_url)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        run_sql(ADD_COLUMN, db_url)
    after = state(db_url)
    assert [c[0] for c in after["items"]["columns"]] == ["id", "name", "qty", "note"]
    assert after["audit_log"] == before["audit_log"]
    assert ADD_COLUMN in prompts.texts[0]  # the model was shown the action
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.APPLIED
    assert step.compensation is not None and step.compensation.kind == "llm.sql"
    args = step.compensation.args
    assert args["compensation_source"] == "llm" and args["model"] == "FakeListChatModel"
    assert args["statements"] == ["ALTER TABLE items DROP COLUMN note"]
    assert args["verified_in"] in (
        "a copy of the SQLite file",
        "a postgresql transaction, rolled back",
    )
    assert step.decision is not None and step.decision.allowed
    assert "LLM-proposed undo (verified in" in step.notes[-1]

    report = goex.rollback(run.id, journal=sqlite_journal)
    assert report.complete and report.compensated == [step.id]
    assert state(db_url) == before


def test_a_wrong_undo_is_caught_and_the_action_refused_as_irreversible(
    db_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(
        "default: allow\nirreversible: refuse\n",
        undo_proposer=LLMUndoProposer(undo_model(WRONG)[0]),
    )
    before = state(db_url)
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match=r"proposed undo rejected.*items: columns differ"),
    ):
        run_sql(ADD_COLUMN, db_url)
    assert state(db_url) == before  # neither the trial nor the action touched the database
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.REFUSED and step.compensation is None
    assert step.decision is not None and step.decision.rule == "irreversible"


def test_a_rejected_undo_leaves_an_allowed_action_irreversible(
    sqlite_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    gate = policy_file(
        "default: allow\nirreversible: allow\n",
        undo_proposer=LLMUndoProposer(undo_model("I would rather not.")[0]),
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        run_sql(ADD_COLUMN, sqlite_db)
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.IRREVERSIBLE and step.compensation is None
    assert step.decision is not None and "the reply was not JSON" in step.decision.reason


def test_an_undo_that_fails_in_the_testbed_is_rejected(
    sqlite_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    reply = '{"undo": ["DROP TABLE no_such_table"]}'
    gate = policy_file(
        "default: allow\nirreversible: refuse\n",
        undo_proposer=LLMUndoProposer(undo_model(reply)[0]),
    )
    before = state(sqlite_db)
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate),
        pytest.raises(ActionRefused, match="the undo failed"),
    ):
        run_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY)", sqlite_db)
    assert state(sqlite_db) == before


def test_on_mysql_a_data_change_is_tried_in_a_rolled_back_transaction(
    mysql_url: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    seed(mysql_url)
    right = '{"undo": ["UPDATE items SET qty = 5 WHERE id = 1"]}'
    model, _ = undo_model('{"undo": ["UPDATE items SET qty = 0 WHERE id = 1"]}', right)
    gate = policy_file(
        "default: allow\nirreversible: refuse\n", undo_proposer=LLMUndoProposer(model)
    )
    before = state(mysql_url)
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        with pytest.raises(ActionRefused, match="items: rows differ"):
            run_sql("UPDATE items SET qty = 0 WHERE id = 1", mysql_url)
        assert state(mysql_url) == before
        run_sql("UPDATE items SET qty = 0 WHERE id = 1", mysql_url)
        with pytest.raises(ActionRefused, match="MySQL commits DDL implicitly"):
            run_sql("ALTER TABLE items ADD COLUMN note TEXT", mysql_url)
    assert [r[2] for r in state(mysql_url)["items"]["rows"]] == [0, 0, 7, 0, 2]
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(mysql_url) == before


def test_a_shell_undo_is_tried_over_an_overlay_of_the_workspace(
    workspace: Path, tmp_path: Path, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    ws = Workspace(workspace, store=tmp_path / "store")
    wrong = '{"undo": "cp src/main.py src/app.py"}'  # leaves the copy behind
    right = '{"undo": "mv src/main.py src/app.py && chmod 644 src/app.py"}'
    model, prompts = undo_model(wrong, right)
    gate = policy_file(
        "default: allow\nirreversible: refuse\n", undo_proposer=LLMUndoProposer(model)
    )
    before = ws.manifest()
    command = "mv src/app.py src/main.py && chmod 600 src/main.py"
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        with pytest.raises(ActionRefused, match=r"still changed: .*src/main.py \(added\)"):
            run_unversioned(workspace, command)
        assert ws.manifest() == before
        run_unversioned(workspace, command)
    assert set(ws.manifest()) ^ set(before) == {"src/app.py", "src/main.py"}
    assert command in prompts.texts[0]
    refused, applied = sqlite_journal.steps(run.id)
    assert refused.status is StepStatus.REFUSED and applied.status is StepStatus.APPLIED
    assert applied.compensation is not None and applied.compensation.kind == "llm.shell"
    assert applied.compensation.args["verified_in"] == (
        "an overlay of the workspace in the bwrap sandbox"
    )
    goex.rollback(run.id, journal=sqlite_journal)
    assert ws.manifest() == before


def test_a_failing_model_gives_no_undo_and_a_failing_approver_no_approval(
    sqlite_db: str, sqlite_journal: Journal, policy_file: MakePolicy
) -> None:
    def broken(request: ApprovalRequest) -> bool:
        raise RuntimeError("the prompt window was closed")

    gate = policy_file(
        "default: allow\nirreversible: ask\n",
        undo_proposer=LLMUndoProposer(undo_model()[0]),  # no reply left: the model raises
        approver=broken,
    )
    before = state(sqlite_db)
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match="the undo proposer failed") as caught,
    ):
        run_sql(ADD_COLUMN, sqlite_db)
    assert "the approver broken failed: RuntimeError: the prompt window was closed" in str(
        caught.value
    )
    assert state(sqlite_db) == before
    assert [s.status for s in sqlite_journal.steps(run.id)] == [StepStatus.REFUSED]


BEYOND_TABLES = {  # actions a no-op undo leaves changed, outside the rows of public tables
    "sqlite": [
        "CREATE VIEW stocked AS SELECT * FROM items WHERE qty > 0",
        "CREATE TRIGGER no_log AFTER INSERT ON items BEGIN DELETE FROM audit_log; END",
    ],
    "postgres": [
        "CREATE VIEW stocked AS SELECT * FROM items WHERE qty > 0",
        "CREATE FUNCTION one() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        "CREATE TYPE mood AS ENUM ('ok')",
        "CREATE SCHEMA scratch",
        "DELETE FROM archive.old_items",  # rows in another schema
        "ALTER TABLE items ALTER COLUMN qty SET DEFAULT 1",
        "ALTER TABLE items ADD CONSTRAINT positive CHECK (qty >= 0)",
    ],
}


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_noop_undo_is_caught_whatever_the_action_changed(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The test-bed compares views, triggers, functions, types, schemas, column defaults,
    constraints and every schema's rows, not only the default schema's tables."""
    url = (
        f"sqlite:///{tmp_path}/shop.db"
        if dialect == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    seed(url)
    if dialect == "postgres":
        run_sql("CREATE SCHEMA archive; CREATE TABLE archive.old_items (id int)", url)
        run_sql("INSERT INTO archive.old_items VALUES (1), (2)", url)
    before = state(url)
    for action in BEYOND_TABLES[dialect]:
        trial = roundtrip(url, [action], ["SELECT 1"])
        assert not trial.restored and "differ" in trial.detail, action
        assert roundtrip(url, [action, "SELECT 1"], []).restored is False
    assert state(url) == before
