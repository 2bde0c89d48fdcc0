"""The journal on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal, NotFound, StepStatus
from goex_tools.errors import StaleTransition
from goex_tools.model import Proposal, Reversibility, Run, RunStatus, Step
from goex_tools.redaction import redactor
from tests.support.fileops import create_file

ROOT = Path(__file__).resolve().parents[1]


def test_default_location_is_a_wal_sqlite_file_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOEX_JOURNAL_URL", raising=False)
    store = Journal()
    store.create_run(Run(name="x"))
    assert (tmp_path / ".goex" / "journal.db").exists()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_env_variable_chooses_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOEX_JOURNAL_URL", f"sqlite:///{tmp_path}/other.db")
    assert Journal().url == f"sqlite:///{tmp_path}/other.db"


def test_steps_are_journaled_pending_then_applied_with_their_history(
    journal: Journal, tmp_path: Path
) -> None:
    target = tmp_path / "a.txt"
    with goex.run("demo", journal=journal) as run:
        create_file(str(target), "hello")
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.APPLIED
    assert step.inputs == {"path": str(target), "text": "hello"}
    assert step.compensation is not None and step.compensation.kind == "python.call"
    assert [e.status for e in journal.events(step.id)] == [StepStatus.PENDING, StepStatus.APPLIED]
    assert journal.get_run(run.id).status is goex.RunStatus.COMPLETED


def test_transitions_are_compare_and_set(journal: Journal) -> None:
    run = journal.create_run(Run(name="cas"))
    step = journal.add_step(Step(run_id=run.id, tool="t", domain="python"))
    journal.transition(step.id, StepStatus.APPLIED, expect=[StepStatus.PENDING])
    with pytest.raises(StaleTransition, match="is applied, not pending"):
        journal.transition(step.id, StepStatus.FAILED, expect=[StepStatus.PENDING])
    assert journal.get_step(step.id).status is StepStatus.APPLIED


def test_unknown_ids_give_clear_errors(journal: Journal) -> None:
    with pytest.raises(NotFound, match="no run with id 'nope'"):
        journal.get_run("nope")
    with pytest.raises(NotFound, match="no step with id 'nope'"):
        journal.get_step("nope")


def test_nested_steps_record_their_parent(journal: Journal, tmp_path: Path) -> None:
    def outer_effect(handle: goex.StepHandle) -> None:
        create_file(str(tmp_path / "inner.txt"))

    proposal = Proposal(tool="agent", domain="test", reversibility=Reversibility.CONTAINER)
    with goex.run("nested", journal=journal) as run:
        run.execute(proposal, outer_effect)
    outer, inner = journal.steps(run.id)
    assert inner.parent_id == outer.id and outer.parent_id is None


def test_a_failed_action_is_journaled_failed_and_not_undone(
    journal: Journal, tmp_path: Path
) -> None:
    with goex.run("fails", journal=journal) as run, pytest.raises(FileNotFoundError):
        create_file(str(tmp_path / "missing-dir" / "x.txt"))
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and "FileNotFoundError" in (step.error or "")
    assert goex.plan(journal, run.id) == []


def test_secrets_never_reach_the_journal(journal: Journal, tmp_path: Path) -> None:
    secret = "sk-test-0123456789abcdef"
    redactor.add(secret)
    with goex.run("secret", journal=journal) as run, pytest.raises(FileNotFoundError) as err:
        create_file(str(tmp_path / "nowhere" / secret), secret)
    [step] = journal.steps(run.id)
    dumped = step.model_dump_json() + "".join(e.detail for e in journal.events(step.id))
    assert secret not in dumped and "[REDACTED]" in dumped
    assert step.error is not None and secret not in step.error
    assert secret in str(err.value)  # the caller's own exception is untouched


def test_calls_outside_a_run_get_a_run_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/adhoc.db"
    monkeypatch.setenv("GOEX_JOURNAL_URL", url)
    create_file(str(tmp_path / "solo.txt"))
    [run] = goex.get_journal(url).list_runs()
    assert run.name == "create_file" and run.status is goex.RunStatus.COMPLETED


WRITER = """
import sys
import goex_tools as goex
from goex_tools.model import Proposal, Reversibility
journal = goex.Journal(sys.argv[1])
for i in range(int(sys.argv[3])):
    with goex.run(f"{sys.argv[2]}-{i}", journal=journal) as run:
        for j in range(3):
            p = Proposal(tool=f"w{j}", domain="test", reversibility=Reversibility.NO_EFFECT)
            run.execute(p, lambda h: None)
"""


def test_two_processes_writing_one_journal_lose_nothing(journal_url: str) -> None:
    Journal(journal_url).close()  # create the schema once, as a deployment would
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, journal_url, name, "40"], cwd=ROOT)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    store = Journal(journal_url)
    runs = store.list_runs(limit=1000)
    assert len(runs) == 80
    steps = [s for r in runs for s in store.steps(r.id)]
    assert len(steps) == 240
    assert all(s.status is StepStatus.APPLIED for s in steps)
    assert len({s.seq for s in steps}) == 240


def test_a_refined_undo_is_saved_before_the_effect(journal: Journal, tmp_path: Path) -> None:
    from tests.support.fileops import remove_file

    target = tmp_path / "late.txt"
    with goex.run("save", journal=journal) as run:
        handle = run.begin(
            goex.Proposal(tool="late", domain="test", reversibility=Reversibility.REVERSIBLE)
        )
        handle.set_compensation(goex.call_compensation(remove_file, {"path": str(target)}))
        handle.save()
        stored = journal.get_step(handle.id)
        assert stored.status is StepStatus.PENDING
        assert stored.compensation == handle.compensation
        target.write_text("x")
        handle.finish()
    goex.rollback(run.id, journal=journal)
    assert not target.exists()


def test_an_undo_refined_after_it_was_saved_is_journaled_when_the_step_finishes(
    journal: Journal, tmp_path: Path
) -> None:
    from tests.support.fileops import remove_file

    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    with goex.run("save", journal=journal) as run:
        handle = run.begin(
            goex.Proposal(tool="late", domain="test", reversibility=Reversibility.REVERSIBLE)
        )
        handle.set_compensation(goex.call_compensation(remove_file, {"path": str(first)}))
        handle.save()
        first.write_text("x")
        second.write_text("y")
        handle.set_compensation(goex.call_compensation(remove_file, {"path": str(second)}))
        handle.finish()
    assert journal.get_step(handle.id).compensation == handle.compensation
    goex.rollback(run.id, journal=journal)
    assert first.exists() and not second.exists()


def test_sqlite_steps_written_on_the_driver_are_the_rows_sqlalchemy_writes(
    tmp_path: Path,
) -> None:
    """The SQLite fast path (journal_writes.DriverWrites) stores exactly what the Core path
    stores, JSON nulls, nested values, non-ASCII text and timestamps included, and the
    compare-and-set behaves alike."""
    from datetime import UTC, datetime

    from goex_tools.journal import _step_row
    from goex_tools.journal_writes import core_transaction, driver_transaction

    store = Journal(f"sqlite:///{tmp_path}/j.db")
    run = store.create_run(Run(name="paths"))
    created = datetime(2026, 11, 25, 17, 0, 1, 123456, tzinfo=UTC)
    values = {
        "status": "applied",
        "updated_at": datetime(2026, 11, 25, 17, 0, 2, 654321, tzinfo=UTC),
        "output": {"rows": [[1, None, "é"]], "text": "ünï\ncode"},
        "effect": {},
        "compensation": None,
        "notes": ["a", "b"],
    }
    stored = {}
    for name, transaction in (("core", core_transaction), ("driver", driver_transaction)):
        step = Step(
            id=f"step-{name}", run_id=run.id, tool="t", domain="d", inputs={"k": None},
            created_at=created, updated_at=created,
        )  # fmt: skip
        with transaction(store.engine) as writes:
            seq = writes.insert_step({k: v for k, v in _step_row(step).items() if k != "seq"})
            assert isinstance(seq, int)
            updated = writes.update_step(step.id, values, ["pending"])
            assert updated is not None and updated["status"] == "applied"
            assert writes.update_step(step.id, values, ["pending"]) is None  # no longer pending
            assert writes.status(step.id) == "applied" and writes.status("nope") is None
        with store.engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT * FROM goex_steps WHERE id = ?", (step.id,))
            stored[name] = dict(raw.one()._mapping)
        read = store.get_step(step.id)
        assert read.output == values["output"] and read.compensation is None
        assert read.created_at == created  # timezone-aware, to the microsecond
        assert read.updated_at == values["updated_at"]
    for row in stored.values():
        row.pop("seq"), row.pop("id")
    assert stored["driver"] == stored["core"]


def test_journal_made_before_the_run_status_index_gets_it_when_opened(
    journal_url: str,
) -> None:
    """A rollback counts what is left in a run through this index (reading the step rows
    instead made `undo_step` slower with every large step in the run, on SQLite)."""
    Journal(journal_url).close()
    engine = sa.create_engine(journal_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_goex_steps_run_status")
    store = Journal(journal_url)
    with engine.connect() as conn:
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("goex_steps")}
    engine.dispose()
    assert "ix_goex_steps_run_status" in indexes
    with goex.run("after", journal=store) as run:
        _note("k")
    assert goex.rollback(run.id, journal=store).complete
    assert store.get_run(run.id).status is RunStatus.ROLLED_BACK
    store.close()


def _forget(key: str) -> None:
    """Nothing to restore."""


@goex.reversible(undo=_forget, tool="note")
def _note(key: str) -> str:
    return key
