"""Deciding on a tentative (held) command: keep applies its changes, discard drops them.

Both are journaled (held -> applied, held -> discarded); a keep journals that it started
before its first change. Each brings paths to a recorded state and skips paths already
there, so a crash in the middle is repaired by running the same decision again; a discard
after a crashed keep undoes exactly what that keep applied, and a discard with no keep
before it touches nothing.
"""

from __future__ import annotations

from pathlib import Path

from goex_tools.domains.fs.apply import materialize, sweep
from goex_tools.domains.fs.changes import Side
from goex_tools.domains.fs.compensation import parse
from goex_tools.domains.fs.entries import matches
from goex_tools.domains.fs.errors import FsError, WorkspaceChanged
from goex_tools.domains.fs.store import BlobStore
from goex_tools.journal import Journal
from goex_tools.model import Step, StepStatus
from goex_tools.runtime import get_journal

KEEPING = "keeping: applying the held changes"


def keep(step_id: str, *, journal: Journal | str | None = None, force: bool = False) -> Step:
    """Apply a held step's changes to its workspace; the step becomes `applied` (undoable)."""
    return _decide(step_id, journal, "after", StepStatus.APPLIED, force)


def discard(step_id: str, *, journal: Journal | str | None = None) -> Step:
    """Drop a held step's changes; the workspace stays as it was; the step becomes `discarded`."""
    return _decide(step_id, journal, "before", StepStatus.DISCARDED, False)


def held_steps(journal: Journal | str | None = None) -> list[Step]:
    """Steps waiting for a person to keep or discard them."""
    return _journal(journal).steps_with_status(StepStatus.HELD)


def _decide(
    step_id: str, journal: Journal | str | None, side: Side, to: StepStatus, force: bool
) -> Step:
    store = _journal(journal)
    step = store.get_step(step_id)
    if step.status is not StepStatus.HELD:
        raise FsError(f"step {step_id} ({step.tool}) is {step.status.value}, not held")
    args = parse(step.compensation)
    blobs = BlobStore(Path(args.store))
    root = Path(args.workspace)
    changes = args.changes
    if side == "before":  # only undo what a crashed `keep` applied; never others' work
        started = any(e.detail == KEEPING for e in store.events(step_id))
        changes = [c for c in changes if started and matches(root, c.path, c.after)]

    def keeping() -> None:  # journaled once nothing can refuse any more
        if side == "after":
            store.transition(step_id, StepStatus.HELD, expect=[StepStatus.HELD], detail=KEEPING)

    with blobs.lock(root):
        sweep(root, args.changes, step_id)  # what a crashed `keep` left half-made
        materialize(
            root,
            blobs,
            changes,
            side,
            force=force,
            conflict=WorkspaceChanged,
            hint="the workspace changed since the command ran; discard it, or keep with force",
            tag=step_id,
            ready=keeping,
        )
        verb = "kept: changes applied" if side == "after" else "discarded: workspace unchanged"
        return store.transition(step_id, to, expect=[StepStatus.HELD], detail=verb)


def _journal(journal: Journal | str | None) -> Journal:
    return journal if isinstance(journal, Journal) else get_journal(journal)
