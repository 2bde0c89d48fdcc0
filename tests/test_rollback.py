"""Rollback of a run, of its last N steps, to a step, of one step; retries and resume."""

from __future__ import annotations

from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, RetryPolicy, RollbackFailed, RunStatus, StepStatus
from goex_tools.errors import GoexError, InvalidCompensation
from goex_tools.journal import steps_table
from goex_tools.tracker import RunTracker, ToolKind
from tests.support.fileops import announce, create_file, create_with_flaky_undo, overwrite

FAST = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02)


def listing(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(root.iterdir())}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    (root / "keep.txt").write_text("original")
    return root


def four_steps(journal: Journal, work: Path) -> str:
    with goex.run("four", journal=journal) as run:
        create_file(str(work / "a.txt"), "a")
        overwrite(str(work / "keep.txt"), "changed once")
        create_file(str(work / "b.txt"), "b")
        overwrite(str(work / "keep.txt"), "changed twice")
    return run.id


def test_rollback_of_a_whole_run_restores_everything(journal: Journal, work: Path) -> None:
    before = listing(work)
    run_id = four_steps(journal, work)
    report = goex.rollback(run_id, journal=journal)
    assert report.complete and len(report.compensated) == 4
    assert listing(work) == before
    assert {s.status for s in journal.steps(run_id)} == {StepStatus.COMPENSATED}
    assert journal.get_run(run_id).status is RunStatus.ROLLED_BACK
    assert goex.rollback(run_id, journal=journal).outcomes == []  # idempotent


def test_rollback_of_the_last_n_steps(journal: Journal, work: Path) -> None:
    run_id = four_steps(journal, work)
    goex.rollback(run_id, steps=2, journal=journal)
    assert listing(work) == {"a.txt": "a", "keep.txt": "changed once"}
    goex.rollback(run_id, steps=1, journal=journal)  # the next newest, not the same again
    assert listing(work) == {"a.txt": "a", "keep.txt": "original"}
    assert journal.get_run(run_id).status is RunStatus.PARTIALLY_ROLLED_BACK


def test_rollback_steps_counts_tool_calls_with_everything_nested(
    journal: Journal, work: Path
) -> None:
    """A tool call that made two effects (a sub-agent, a goex tool) is one of `steps=N`."""
    tracker = RunTracker(journal=journal, framework="test")
    tracker.start("agent", None, name="agent")
    for call, names in (("call-1", ["a.txt"]), ("call-2", ["b.txt", "c.txt"])):
        tracker.start(call, "agent", name="batch", tool=ToolKind.JOURNALED)
        with tracker.scope(call):
            for name in names:
                create_file(str(work / name), name)
        tracker.end(call, "ok")
    tracker.end("agent")
    assert [s.id for s in goex.plan(journal, "agent", steps=1)] == [
        s.id for s in reversed(journal.steps("agent")) if s.parent_id == "call-2"
    ]
    goex.rollback("agent", steps=1, journal=journal)
    assert listing(work) == {"a.txt": "a.txt", "keep.txt": "original"}
    goex.rollback("agent", steps=1, journal=journal)  # the call before, not the same again
    assert listing(work) == {"keep.txt": "original"}


def test_rollback_to_a_step_undoes_everything_after_it(journal: Journal, work: Path) -> None:
    run_id = four_steps(journal, work)
    second = journal.steps(run_id)[1]
    goex.rollback(run_id, to=second.id, journal=journal)
    assert listing(work) == {"a.txt": "a", "keep.txt": "changed once"}


def test_undo_of_one_step(journal: Journal, work: Path) -> None:
    run_id = four_steps(journal, work)
    first = journal.steps(run_id)[0]
    goex.undo_step(first.id, journal=journal)
    assert "a.txt" not in listing(work) and (work / "b.txt").exists()
    with pytest.raises(GoexError, match="is compensated: nothing to undo"):
        goex.undo_step(first.id, journal=journal)


def test_dry_run_changes_nothing(journal: Journal, work: Path) -> None:
    run_id = four_steps(journal, work)
    after = listing(work)
    report = goex.rollback(run_id, journal=journal, dry_run=True)
    assert [o.outcome for o in report.outcomes] == ["would_compensate"] * 4
    assert listing(work) == after
    assert {s.status for s in journal.steps(run_id)} == {StepStatus.APPLIED}


def test_transient_failures_are_retried(journal: Journal, work: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    with goex.run("flaky", journal=journal) as run:
        create_with_flaky_undo(str(work / "f.txt"), str(flag))
    flag.write_text("down")
    # The flag disappears after the first failed attempt: the second attempt succeeds.
    step = journal.steps(run.id)[0]

    import tests.support.fileops as ops

    original = ops.flaky_remove

    def clear_then_fail(path: str, flag: str, **kw: object) -> None:
        try:
            original(path, flag)
        finally:
            Path(flag).unlink(missing_ok=True)

    ops.flaky_remove = clear_then_fail  # type: ignore[assignment]
    try:
        goex.rollback(run.id, journal=journal, retry=FAST)
    finally:
        ops.flaky_remove = original  # type: ignore[assignment]
    assert not (work / "f.txt").exists()
    assert (tmp_path / "flag.count").read_text() == "2"
    details = [e.detail for e in journal.events(step.id)]
    assert any("attempt 1 failed transiently" in d for d in details)


def test_a_compensation_that_keeps_failing_stops_the_rollback_which_resumes_later(
    journal: Journal, work: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    with goex.run("resume", journal=journal) as run:
        create_file(str(work / "first.txt"))
        create_with_flaky_undo(str(work / "middle.txt"), str(flag))
        create_file(str(work / "last.txt"))
    flag.write_text("down")
    with pytest.raises(RollbackFailed, match="still failing after 3 attempts") as err:
        goex.rollback(run.id, journal=journal, retry=FAST)
    assert [o.outcome for o in err.value.report.outcomes] == ["compensated", "failed"]
    assert sorted(p.name for p in work.iterdir()) == ["first.txt", "keep.txt", "middle.txt"]
    statuses = [s.status for s in journal.steps(run.id)]
    assert statuses == [StepStatus.APPLIED, StepStatus.COMPENSATION_FAILED, StepStatus.COMPENSATED]
    assert journal.get_run(run.id).status is RunStatus.PARTIALLY_ROLLED_BACK

    flag.unlink()
    report = goex.rollback(run.id, journal=journal, retry=FAST)
    assert len(report.compensated) == 2
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"]
    assert journal.get_run(run.id).status is RunStatus.ROLLED_BACK


def test_irreversible_steps_stop_the_rollback_or_are_skipped(journal: Journal, work: Path) -> None:
    with goex.run("irreversible", journal=journal) as run:
        create_file(str(work / "before.txt"))
        announce("sent an email")
        create_file(str(work / "after.txt"))
    with pytest.raises(RollbackFailed, match="irreversible step"):
        goex.rollback(run.id, journal=journal)
    assert not (work / "after.txt").exists() and (work / "before.txt").exists()
    report = goex.rollback(run.id, journal=journal, on_irreversible="skip")
    assert [o.outcome for o in report.outcomes] == ["irreversible", "compensated"]
    assert not (work / "before.txt").exists()
    assert journal.get_run(run.id).status is RunStatus.PARTIALLY_ROLLED_BACK


def corrupt(journal: Journal, step_id: str, compensation: dict[str, object]) -> None:
    with journal.engine.begin() as conn:
        conn.execute(
            steps_table.update()
            .where(steps_table.c.id == step_id)
            .values(compensation=compensation)
        )


@pytest.mark.parametrize(
    ("compensation", "message"),
    [
        ({"kind": "no.such.kind", "args": {}}, "unknown compensation kind 'no.such.kind'"),
        ({"kind": "python.call", "args": {"kwargs": {}}}, "function: Field required"),
        ({"kind": "python.call", "args": {"function": "os:no_such_function"}}, "cannot import"),
    ],
)
def test_bad_compensations_give_a_clear_error_and_change_nothing(
    journal: Journal, work: Path, compensation: dict[str, object], message: str
) -> None:
    run_id = four_steps(journal, work)
    after = listing(work)
    newest = journal.steps(run_id)[-1]
    corrupt(journal, newest.id, compensation)
    with pytest.raises(InvalidCompensation, match=message):
        goex.rollback(run_id, journal=journal)
    assert listing(work) == after
    assert {s.status for s in journal.steps(run_id)} == {StepStatus.APPLIED}


def test_unknown_run_gives_a_clear_error(journal: Journal) -> None:
    with pytest.raises(goex.NotFound, match="no run with id 'missing'"):
        goex.rollback("missing", journal=journal)


def test_undo_must_be_importable() -> None:
    with pytest.raises(TypeError, match="must be a module-level function"):

        @goex.reversible(undo=lambda path: None)
        def make(path: str) -> None: ...


def test_action_block_with_a_refined_undo(journal: Journal, work: Path) -> None:
    from tests.support.fileops import remove_file

    created = work / "made.txt"
    with (
        goex.run("block", journal=journal) as run,
        goex.action("make", undo=remove_file, undo_kwargs={"path": "?"}) as handle,
    ):
        created.write_text("x")
        handle.set_compensation(goex.call_compensation(remove_file, {"path": str(created)}))
    goex.rollback(run.id, journal=journal)
    assert not created.exists()
