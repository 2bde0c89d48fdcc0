"""The label of a step: `exact`, `semantic` or none, decided before the effect, journaled,
shown, never raised after the effect, and carried into the rollback report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import (
    Compensation,
    Decision,
    Journal,
    Proposal,
    Reversibility,
    StepStatus,
    notebook,
)
from goex_tools.cli import main
from goex_tools.domains.fs import Workspace
from goex_tools.domains.http import HttpCall, HttpTool
from goex_tools.journal import steps_table
from goex_tools.reversible import call_compensation
from goex_tools.runtime import RunContext
from tests.support.fileops import announce, remove_file
from tests.support.labelled import create_ticket, open_issue


def two_tickets(journal: Journal, root: Path) -> str:
    with goex.run("tickets", journal=journal) as run:
        create_ticket(str(root / "t1.json"), "exact one")
        open_issue(str(root / "i1.json"), "semantic one")
    return run.id


def test_labels_are_journaled_before_the_effect_and_shown_by_show(
    journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = two_tickets(journal, tmp_path)
    created, opened = journal.steps(run_id)
    assert (created.reversibility, opened.reversibility) == (
        Reversibility.EXACT,
        Reversibility.SEMANTIC,
    )
    pending = [e for e in journal.events(opened.id) if e.status is StepStatus.PENDING]
    assert pending, "the step was journaled as pending before its effect, with its label"
    assert main(["show", run_id, "--journal", journal.url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["reversibility"] for s in shown["steps"]] == ["semantic", "exact"]  # newest first
    assert main(["show", run_id, "--journal", journal.url]) == 0
    text = capsys.readouterr().out
    assert "exact:" in text and "semantic:" in text  # the table wraps what follows


def test_rollback_report_tells_exact_restores_from_semantic_ones(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = two_tickets(journal, tmp_path)
    created, opened = journal.steps(run_id)
    dry = goex.rollback(run_id, journal=journal, dry_run=True)
    assert [(o.step_id, o.undo) for o in dry.outcomes] == [
        (opened.id, "semantic"),
        (created.id, "exact"),
    ]
    report = goex.rollback(run_id, journal=journal)
    assert report.restored_exactly == [created.id]
    assert report.restored_semantically == [opened.id]
    assert not (tmp_path / "t1.json").exists()  # exact: as before the run
    assert json.loads((tmp_path / "i1.json").read_text())["state"] == "closed"  # semantic


def test_cli_rollback_names_the_steps_undone_only_semantically(
    journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = two_tickets(journal, tmp_path)
    _, opened = journal.steps(run_id)
    assert main(["rollback", run_id, "--journal", journal.url]) == 0
    text = capsys.readouterr().out
    assert "1 step(s) undone only semantically" in text and opened.id in text
    run_id = two_tickets(journal, tmp_path)
    assert main(["rollback", run_id, "--journal", journal.url, "--json"]) == 0
    outcomes = json.loads(capsys.readouterr().out)["outcomes"]
    assert [o["undo"] for o in outcomes] == ["semantic", "exact"]


def test_notebook_says_how_many_steps_were_undone_only_semantically(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = two_tickets(journal, tmp_path)
    rows = notebook.show(run_id, journal=journal).rows()
    assert [r[5].split(":")[0] for r in rows] == ["exact", "semantic"]
    view = notebook.rollback(run_id, journal=journal)
    assert view.outcome().startswith("undid 2 step(s) in this rollback (1 of them only semantic")


class SuppliesAnUndo:
    """A gate that finds an undo for an action that had none (as an LLM proposer does)."""

    def decide(self, proposal: Proposal, run: RunContext) -> Decision:
        path = str(run.journal.url)  # any importable undo will do; it is never run here
        undo = call_compensation(remove_file, {"path": path})
        return Decision(allowed=True, reason="found one", compensation=undo)


def test_an_undo_the_gate_supplies_is_semantic_never_exact(journal: Journal) -> None:
    with goex.run("gate", journal=journal, gate=SuppliesAnUndo()) as run:
        announce("hello")
    (step,) = journal.steps(run.id)
    assert step.compensation is not None
    assert step.reversibility is Reversibility.SEMANTIC
    assert goex.rollback(run.id, journal=journal, dry_run=True).outcomes[0].undo == "semantic"


def test_a_label_is_not_raised_by_an_undo_set_after_the_effect(
    journal: Journal, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    exact = call_compensation(remove_file, {"path": str(path)})
    with (
        goex.run("refined", journal=journal) as run,
        goex.action("write", undo=remove_file, undo_kwargs={}, semantic=True) as handle,
    ):
        path.write_text("x")
        handle.set_compensation(exact)  # refined after the effect
    (step,) = journal.steps(run.id)
    assert step.compensation == exact and step.reversibility is Reversibility.SEMANTIC
    assert goex.rollback(run.id, journal=journal).restored_semantically == [step.id]


def test_a_journal_written_before_labels_reads_reversible_as_exact(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = two_tickets(journal, tmp_path)
    created, _ = journal.steps(run_id)
    with journal.engine.begin() as conn:
        conn.execute(
            sa.update(steps_table)
            .where(steps_table.c.id == created.id)
            .values(reversibility="reversible")
        )
    assert journal.get_step(created.id).reversibility is Reversibility.EXACT


def test_reversible_refuses_a_semantic_label_without_an_undo() -> None:
    with pytest.raises(TypeError, match="semantic=True labels an undo"):
        goex.reversible(irreversible=True, semantic=True)


def test_run_shell_with_network_is_semantic_without_it_exact(
    journal: Journal, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    ws = Workspace(root, store=tmp_path / "store")
    with goex.run("shell", journal=journal) as run:
        ws.run_shell("echo a > a.txt")
        ws.run_shell("echo b > b.txt", network=True)
    local, networked = journal.steps(run.id)
    assert local.reversibility is Reversibility.EXACT
    assert networked.reversibility is Reversibility.SEMANTIC
    assert any("network calls" in note for note in networked.notes)
    report = goex.rollback(run.id, journal=journal)
    assert report.restored_semantically == [networked.id]
    assert report.restored_exactly == [local.id]
    assert sorted(p.name for p in root.iterdir()) == []


def test_an_llm_proposed_http_undo_is_classified_semantic() -> None:
    def propose(call: HttpCall) -> Compensation:
        return Compensation(kind="http.revert", args={}, description="a guess")

    api = HttpTool(proposer=propose, verifier=lambda call, undo: True)
    proposal = api.classify("POST", "http://127.0.0.1:9/notify", json={"to": "all"})
    assert proposal.reversibility is Reversibility.SEMANTIC
    assert proposal.predicted["compensation_source"] == "llm"
