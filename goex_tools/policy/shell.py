"""Shell commands in a workspace for the test-bed: tried over an overlay, or applied for real.

Both go through the fs domain's sandboxes: the command runs over an overlay of the workspace
(at the workspace's own path), and what it changed is read from the overlay's upper layer.
A trial compares that with the workspace and throws the overlay away; an application (an
LLM-proposed undo being run by a rollback) writes the changes into the workspace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from goex_tools.domains.fs.apply import materialize
from goex_tools.domains.fs.changes import PathChange
from goex_tools.domains.fs.plan import plan_upper
from goex_tools.domains.fs.store import BlobStore
from goex_tools.errors import GoexError
from goex_tools.policy.testbed import TrialResult
from goex_tools.sandbox import Layers, Limits, get_sandbox
from goex_tools.sandbox.overlay import make_layers, remove_layers

TIMEOUT = 60.0


def workspace_roundtrip(workspace: str, action: str, undo: str, sandbox: str) -> TrialResult:
    """Run `action` then `undo` over one overlay of `workspace`; restored if nothing changed."""
    where = f"an overlay of the workspace in the {sandbox} sandbox"
    with _overlay(Path(workspace)) as (layers, store):
        for label, command in (("action", action), ("undo", undo)):
            problem = _run(command, layers, sandbox)
            if problem:
                return TrialResult(restored=False, testbed=where, detail=f"the {label} {problem}")
        left = plan_upper(Path(workspace), layers.upper, store)
    shown = ", ".join(f"{c.path} ({c.kind})" for c in left[:10])
    return TrialResult(
        restored=not left, testbed=where, detail=f"still changed: {shown}" if left else ""
    )


def run_in_workspace(command: str, workspace: str, sandbox: str) -> list[PathChange]:
    """Run `command` in the sandbox and write its workspace changes into the workspace."""
    root = Path(workspace)
    with _overlay(root) as (layers, store):
        problem = _run(command, layers, sandbox)
        if problem:
            raise GoexError(f"the undo command {problem}")
        changes = plan_upper(root, layers.upper, store)
        materialize(root, store, changes, "after")
    return changes


def _run(command: str, layers: Layers, sandbox: str) -> str:
    done = get_sandbox(sandbox).run(command, layers, Limits(timeout=TIMEOUT))
    if done.timed_out:
        return f"ran past {TIMEOUT:.0f}s"
    if done.exit_code != 0:
        return f"exited with {done.exit_code}: {done.stderr.strip()[:300]}"
    return ""


@contextmanager
def _overlay(workspace: Path) -> Iterator[tuple[Layers, BlobStore]]:
    with tempfile.TemporaryDirectory(prefix="goex-testbed-") as tmp:
        layers = make_layers(workspace, Path(tmp) / "scratch")
        try:
            yield layers, BlobStore(Path(tmp) / "store")
        finally:
            remove_layers(layers)
