"""The one compensation kind of the filesystem domain: `fs.restore`.

Every filesystem tool (and `run_shell`) journals the before- and after-entries of the
paths it touched; undoing restores the before-entries, refusing with a conflict when a path
has changed since (naming the later steps of the run that touched it).
"""

from __future__ import annotations

from pathlib import Path

from goex_tools.domains.fs.apply import conflict_message, materialize, observed, sweep
from goex_tools.domains.fs.changes import PathChange, RestoreArgs
from goex_tools.domains.fs.entries import Entry, matches
from goex_tools.domains.fs.store import BlobStore
from goex_tools.journal import Journal
from goex_tools.model import Compensation, JSONDict, Step, StepStatus
from goex_tools.registry import EffectState, UndoContext, registry

KIND = "fs.restore"


def restore_compensation(workspace: Path, store: Path, changes: list[PathChange]) -> Compensation:
    args = RestoreArgs(workspace=str(workspace), store=str(store), changes=changes)
    names = ", ".join(c.shown for c in changes[:3]) + (" ..." if len(changes) > 3 else "")
    return Compensation(
        kind=KIND,
        args=args.model_dump(mode="json"),
        description=f"restore {len(changes)} path(s) in {workspace}: {names}",
    )


def parse(compensation: Compensation | None) -> RestoreArgs:
    if compensation is None or compensation.kind != KIND:
        raise ValueError("this step has no fs.restore compensation")
    return RestoreArgs.model_validate(compensation.args)


def _probe(step: Step) -> EffectState:
    """Which recorded state the step's paths are in. goex's own temporaries for the step (a
    crash between making one and renaming it into place) are removed first: they belong to
    no recorded state, and nobody else would ever remove them."""
    args = parse(step.compensation)
    root = Path(args.workspace)
    with BlobStore(Path(args.store)).lock(root):
        sweep(root, args.changes, step.id)
    if not args.changes:
        return EffectState.NOT_HAPPENED  # nothing was recorded, so nothing was applied
    states = {_state(root, c) for c in args.changes}
    if "other" in states:
        return EffectState.UNKNOWN
    if states == {"before"}:
        return EffectState.NOT_HAPPENED
    return EffectState.HAPPENED  # wholly or partly applied: undo brings back `before`


def _state(root: Path, change: PathChange) -> str:
    if matches(root, change.path, change.after):
        return "after"
    return "before" if matches(root, change.path, change.before) else "other"


def _preview(steps: list[Step]) -> dict[str, str]:
    """The conflicts undoing `steps` in this order (newest first) would meet: each path is
    read once, then taken as each undo leaves it (its step's before-entry); a path in neither
    state a step recorded when that step's undo comes is a conflict, as `materialize` sees it.
    This is what a person changed after the step, or between two steps on the same path."""
    holds: dict[tuple[str, str], Entry | None] = {}
    found: dict[str, str] = {}
    for step in steps:
        args = parse(step.compensation)
        root = Path(args.workspace)
        strangers = []
        for change in args.changes:
            where = (args.workspace, change.path)
            if where not in holds:
                holds[where] = observed(root, change.path)
            if holds[where] not in (change.after, change.before):
                strangers.append(change.shown)
            holds[where] = change.before
        if strangers:
            found[step.id] = conflict_message(strangers, "")
    return found


@registry.register(KIND, args_model=RestoreArgs, probe=_probe, preview=_preview)
def _restore(args: JSONDict, ctx: UndoContext) -> None:
    parsed = RestoreArgs.model_validate(args)
    root, store = Path(parsed.workspace), BlobStore(Path(parsed.store))
    with store.lock(root):
        sweep(root, parsed.changes, ctx.step.id)  # left by a crash while applying or undoing
        materialize(
            root,
            store,
            parsed.changes,
            "before",
            force=ctx.force,
            hint=lambda: _later_steps_hint(ctx.journal, ctx.step, parsed),
            tag=ctx.step.id,
        )


def _later_steps_hint(journal: Journal, step: Step, args: RestoreArgs) -> str:
    paths = {c.path for c in args.changes}
    later = []
    for other in journal.steps(step.run_id):
        if (other.seq or 0) <= (step.seq or 0) or other.status is not StepStatus.APPLIED:
            continue
        if other.compensation is None or other.compensation.kind != KIND:
            continue
        theirs = RestoreArgs.model_validate(other.compensation.args)
        if theirs.workspace == args.workspace and paths & {c.path for c in theirs.changes}:
            later.append(f"{other.id} ({other.tool})")
    if later:
        return (
            f"Later steps touched the same paths: {', '.join(later)}; undo them first "
            f"(roll back the run to this step), or force to overwrite their changes."
        )
    return "Someone changed them outside goex; force overwrites their changes."
