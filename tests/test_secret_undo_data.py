"""An undo whose data holds a secret value: the journal never stores the value, and never
stores a masked copy that a rollback would write back as if it were the data."""

from __future__ import annotations

from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, RollbackFailed, StepStatus
from goex_tools.redaction import redactor
from tests.support.fileops import overwrite

SECRET = "sk-live-4f9c2a7e1b"


def test_an_undo_holding_a_secret_is_journaled_as_unavailable_not_masked(
    journal: Journal, tmp_path: Path
) -> None:
    redactor.add_secret(SECRET)
    target = tmp_path / "config.txt"
    target.write_text(f"token={SECRET}\n")
    with goex.run("rotate", journal=journal) as run:
        overwrite(str(target), "token=new\n")
    [step] = journal.steps(run.id)
    assert step.status is StepStatus.APPLIED
    assert SECRET not in step.model_dump_json()
    assert step.compensation is not None and step.compensation.args.get("unavailable")
    with pytest.raises(RollbackFailed, match="cannot be undone: its undo data held a secret"):
        goex.rollback(run.id, journal=journal)
    assert target.read_text() == "token=new\n"  # not "token=[REDACTED]": nothing written back
    assert journal.get_step(step.id).status is StepStatus.APPLIED
