"""`semantic:` in the policy file holds actions whose undo only approximates (closing what
cannot be deleted, an LLM's undo) to its verdict, as `irreversible:` holds one-way actions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import ActionRefused, Journal, Reversibility, StepStatus
from goex_tools.domains.sql import run_sql
from goex_tools.policy import ApprovalRequest, Policy
from goex_tools.policy.llm_undo import LLMUndoProposer
from tests.policy.models import undo_model
from tests.policy.sqlstate import seed, state
from tests.support.labelled import create_ticket, open_issue

MakePolicy = Callable[..., Policy]
RIGHT = '{"undo": ["ALTER TABLE items DROP COLUMN note"], "explanation": "drop it again"}'


def test_semantic_refuse_refuses_a_semantic_action_before_it_runs(
    sqlite_journal: Journal, policy_file: MakePolicy, tmp_path: Path
) -> None:
    gate = policy_file("default: allow\nsemantic: refuse\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        create_ticket(str(tmp_path / "t.json"), "exact undo: allowed")
        with pytest.raises(ActionRefused, match="can only be undone semantically"):
            open_issue(str(tmp_path / "i.json"), "semantic undo: refused")
    assert not (tmp_path / "i.json").exists()
    created, refused = sqlite_journal.steps(run.id)
    assert created.status is StepStatus.APPLIED
    assert refused.status is StepStatus.REFUSED
    assert refused.decision is not None and refused.decision.rule == "semantic"
    assert refused.reversibility is Reversibility.SEMANTIC


def test_semantic_ask_shows_the_approver_the_label_and_what_the_undo_does(
    sqlite_journal: Journal, policy_file: MakePolicy, tmp_path: Path
) -> None:
    asked: list[str] = []

    def approver(request: ApprovalRequest) -> bool:
        asked.append(request.describe())
        return "no" not in str(request.proposal.inputs["title"])

    gate = policy_file("default: allow\nsemantic: ask\n", approver=approver)
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        open_issue(str(tmp_path / "yes.json"), "approved")
        with pytest.raises(ActionRefused):
            open_issue(str(tmp_path / "no.json"), "say no")
    assert (tmp_path / "yes.json").exists() and not (tmp_path / "no.json").exists()
    assert "undo:      semantic: close_issue(" in asked[0]


def test_without_a_semantic_key_a_semantic_action_is_allowed(
    sqlite_journal: Journal, policy_file: MakePolicy, tmp_path: Path
) -> None:
    gate = policy_file("default: allow\n")
    with goex.run("agent", journal=sqlite_journal, gate=gate):
        open_issue(str(tmp_path / "i.json"), "allowed")
    assert (tmp_path / "i.json").exists()


def test_an_llm_undo_is_semantic_so_semantic_refuse_holds_the_action(
    sqlite_journal: Journal, policy_file: MakePolicy, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"
    seed(url)
    before = state(url)
    gate = policy_file(
        "default: allow\nirreversible: allow\nsemantic: refuse\n",
        undo_proposer=LLMUndoProposer(undo_model(RIGHT)[0]),
    )
    with (
        goex.run("agent", journal=sqlite_journal, gate=gate) as run,
        pytest.raises(ActionRefused, match="semantically"),
    ):
        run_sql("ALTER TABLE items ADD COLUMN note TEXT", url)
    assert state(url) == before
    (step,) = sqlite_journal.steps(run.id)
    assert step.status is StepStatus.REFUSED and step.decision is not None
    assert step.decision.rule == "semantic"


def test_an_accepted_llm_undo_is_journaled_semantic(
    sqlite_journal: Journal, policy_file: MakePolicy, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"
    seed(url)
    gate = policy_file(
        "default: allow\nirreversible: refuse\n",
        undo_proposer=LLMUndoProposer(undo_model(RIGHT)[0]),
    )
    with goex.run("agent", journal=sqlite_journal, gate=gate) as run:
        run_sql("ALTER TABLE items ADD COLUMN note TEXT", url)
    (step,) = sqlite_journal.steps(run.id)
    assert step.reversibility is Reversibility.SEMANTIC
    report = goex.rollback(run.id, journal=sqlite_journal)
    assert report.restored_semantically == [step.id] and report.restored_exactly == []
