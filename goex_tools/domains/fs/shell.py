"""`run_shell`: a command in a sandbox over an overlay of the workspace, then its changes.

The command writes only the overlay's upper layer. Afterwards its changes are read from
that layer (cost proportional to the change), their before-images are captured, the
`fs.restore` undo is journaled (write-ahead), and only then are the changes applied to the
workspace, or held for a person to keep or discard.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from goex_tools.domains.fs import beneath
from goex_tools.domains.fs.apply import MAX_NAMED, hard_link_note, materialize
from goex_tools.domains.fs.changes import PathChange, effect_summary
from goex_tools.domains.fs.compensation import restore_compensation
from goex_tools.domains.fs.errors import CommandTimedOut, FsError, WorkspaceChanged
from goex_tools.domains.fs.own import own_paths, refuse_inside
from goex_tools.domains.fs.plan import plan_upper
from goex_tools.domains.fs.results import ShellResult, changed
from goex_tools.domains.fs.store import BlobStore
from goex_tools.model import Proposal, Reversibility
from goex_tools.runtime import StepHandle, execute
from goex_tools.sandbox import Execution, LimitExceeded, Limits, Sandbox
from goex_tools.sandbox.overlay import (
    make_layers,
    remove_layers,
    remove_layers_later,
    remove_tree,
    remove_waiting_layers,
)


class Site(Protocol):
    """What `run_shell` needs of a workspace; `Workspace` is one. Structural, so that this
    module does not import `workspace.py`, which imports it."""

    root: Path
    store: BlobStore
    sandbox: Sandbox
    limits: Limits

    def predicted(self, paths: list[str]) -> dict[str, Any]: ...


OUTSIDE_EFFECTS = (
    "effects outside the workspace (network calls, processes on other machines) are not "
    "recorded and cannot be undone"
)


def run_shell(
    ws: Site,
    command: str,
    *,
    tentative: bool = False,
    timeout: float | None = None,
    network: bool | None = None,
) -> ShellResult:
    """Run `command` in the workspace's sandbox; return its exit code, stdout and stderr.

    `tentative=True` holds the changes until `keep(step_id)` or `discard(step_id)`.
    """
    chosen = {"timeout": timeout, "network": network}
    update = {name: value for name, value in chosen.items() if value is not None}
    try:
        limits = Limits.model_validate(ws.limits.model_dump() | update)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FsError(f"invalid limits for run_shell: {problems}; nothing was run") from None
    notes = ws.sandbox.notes(limits)
    label = Reversibility.EXACT
    if limits.network or ws.sandbox.name == "none":
        notes.append(OUTSIDE_EFFECTS)
        label = Reversibility.SEMANTIC  # the workspace comes back; what it sent does not
    predicted = ws.predicted([]) | {
        "command": command,
        "sandbox": ws.sandbox.name,
        **({"image": image} if (image := getattr(ws.sandbox, "image", None)) else {}),
        "network": limits.network,
        "limits": limits.model_dump(include={"memory", "processes", "file_size", "cpu_time"}),
    }
    proposal = Proposal(
        tool="run_shell",
        domain="fs",
        inputs={"command": command, "tentative": tentative, "timeout": limits.timeout},
        reversibility=label,
        compensation=restore_compensation(ws.root, ws.store.root, []),
        predicted=predicted,
        notes=notes,
    )

    def effect(handle: StepHandle) -> ShellResult:
        return _effect(ws, handle, command, limits, tentative)

    result: ShellResult = execute(proposal, effect)
    return result


def _effect(
    ws: Site, handle: StepHandle, command: str, limits: Limits, tentative: bool
) -> ShellResult:
    refuse_inside(ws.root, handle.run.journal)
    scratch = ws.store.scratch / f"shell-{handle.id}"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    held = ws.store.hold(scratch)  # not swept by another process while in use
    try:
        return _run_held(ws, handle, command, limits, tentative, scratch)
    except BaseException:
        remove_tree(scratch)  # a failure is reported with nothing of the command left
        raise
    finally:
        os.close(held)


def _run_held(
    ws: Site,
    handle: StepHandle,
    command: str,
    limits: Limits,
    tentative: bool,
    scratch: Path,
) -> ShellResult:
    hidden = list(own_paths(handle.run.journal, ws.store.root).values())
    layers = make_layers(ws.root, scratch, hidden=hidden)  # no journal, no old files
    started = time.time_ns()
    remove_waiting_layers()  # earlier commands' layers go while this one's sandbox starts
    try:
        execution = ws.sandbox.run(command, layers, limits)
        if execution.timed_out:
            raise CommandTimedOut(
                f"the command ran past its {limits.timeout:g} s limit and was killed; its "
                f"changes were discarded. Output so far: {execution.stdout[-500:]!r} "
                f"{execution.stderr[-500:]!r}"
            )
        if execution.exceeded:
            raise _past_limits(execution.exceeded, execution)
        with ws.store.lock(ws.root):
            changes = plan_upper(ws.root, layers.upper, ws.store)
            big = [c.shown for c in changes if (c.after.size or 0) >= limits.file_size]
            if big:
                size = f"file size ({limits.file_size} bytes: {', '.join(big[:MAX_NAMED])})"
                raise _past_limits([size], execution)
            _refuse_lost_updates(ws.root, changes, started)
            if note := hard_link_note(ws.root, changes):
                handle.notes.append(note)
            handle.set_compensation(restore_compensation(ws.root, ws.store.root, changes))
            handle.effect.update(effect_summary(changes))
            handle.effect["exit_code"] = execution.exit_code
            handle.charge()  # the bytes are taken from the run's budgets before applying
            if tentative:
                handle.hold()
                handle.notes.append("tentative: changes held until kept or discarded")
            handle.save("changes recorded before they are applied")
            if not tentative:
                materialize(
                    ws.root, ws.store, changes, "after", conflict=WorkspaceChanged, tag=handle.id
                )
    except BaseException:
        remove_layers(layers)  # a failure is reported with nothing of the command left
        raise
    remove_layers_later(layers)  # emptied of files; the result need not wait for the rest
    return ShellResult(
        step_id=handle.id,
        exit_code=execution.exit_code,
        stdout=execution.stdout,
        stderr=execution.stderr,
        stdout_truncated=execution.stdout_truncated,
        stderr_truncated=execution.stderr_truncated,
        changes=changed(changes),
        held=tentative,
        notes=handle.notes,
    )


def _past_limits(which: list[str], execution: Execution) -> LimitExceeded:
    return LimitExceeded(
        f"the command went past its {' and '.join(which)} limit and was stopped; nothing it "
        f"did was applied. Output so far: {execution.stdout[-500:]!r} {execution.stderr[-500:]!r}"
    )


def _refuse_lost_updates(root: Path, changes: list[PathChange], started: int) -> None:
    """Refuse to apply a command's result over files someone changed while it ran.

    The overlay shows the live workspace, but a file the command copied up no longer follows
    it: applying would silently drop the other change. A file's ctime (which no one can set)
    after the start says so. Directories are left to the conflict checks of `materialize`.
    """
    moved = []
    for change in changes:
        st = beneath.lstat(root, change.path)
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_ctime_ns > started:
            moved.append(change.shown)
    if moved:
        raise WorkspaceChanged(
            f"{', '.join(moved[:MAX_NAMED])} changed in the workspace while the command ran; "
            f"its result was computed from the old content, so nothing was applied. Run it again"
        )
