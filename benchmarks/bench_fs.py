"""Checkpoint cost of a shell command over a large workspace: goex vs plain git.

A workspace of N small files; a command changes 10 of them.
- baseline per action: run the command directly, then `git add -A && git commit` (a
  separate git dir, as a checkpointing tool would use); goex: `run_shell` (bwrap sandbox,
  overlay, capture of the 10 changed paths, write-ahead journal, apply).
- baseline undo: `git reset --hard HEAD~1`; goex: rolling back that one step.
- growth: goex's per-action time with 50,000 files vs with 1,000 files (target: flat).
Target: run_shell's checkpointing must not grow with the workspace's size.

Run: .venv/bin/python -m benchmarks.bench_fs [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

import goex_tools as goex
from benchmarks.harness import Report, Row, Timing, measure
from goex_tools.domains.fs import Workspace

CHANGED = 10


def make_tree(root: Path, files: int) -> list[str]:
    """`files` files of 1-4 KiB in 100-file directories; returns their relative paths."""
    names = []
    for i in range(files):
        rel = f"d{i // 100:04d}/f{i:06d}.txt"
        path = root / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(512 + i % 3584).hex().encode()[: 1024 + i % 3072])
        names.append(rel)
    return names


def command(names: list[str], round_no: int) -> str:
    step = max(1, len(names) // CHANGED)
    targets = " ".join(names[i * step] for i in range(CHANGED))
    return f"for f in {targets}; do echo round {round_no} >> $f; done"


def git(git_dir: Path, work: Path, *args: str) -> None:
    subprocess.run(
        ["git", f"--git-dir={git_dir}", f"--work-tree={work}", *args],
        check=True,
        capture_output=True,
    )


class GitCheckpoints:
    """Plain git as the checkpointing tool: a separate git dir, commit per action."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.root, self.names, self.numbers = root, names, count()
        self.git_dir = root.parent / "shadow.git"
        self.run("init", "-q")
        self.run("config", "user.email", "b@example.com")
        self.run("config", "user.name", "bench")
        start = time.perf_counter()
        self.run("add", "-A")
        self.run("commit", "-q", "-m", "initial")
        self.first_snapshot = time.perf_counter() - start

    def run(self, *args: str) -> None:
        git = ["git", f"--git-dir={self.git_dir}", f"--work-tree={self.root}"]
        subprocess.run([*git, *args], check=True, capture_output=True)

    def action(self) -> None:
        subprocess.run(["sh", "-c", command(self.names, next(self.numbers))], cwd=self.root)
        self.run("add", "-A")
        self.run("commit", "-q", "-m", "step")

    def undo(self) -> None:
        self.run("reset", "-q", "--hard", "HEAD~1")


class GoexCheckpoints:
    """goex: run_shell in bwrap over an overlay; undo by rolling the step's run back."""

    def __init__(self, root: Path, names: list[str], journal: goex.Journal) -> None:
        self.ws = Workspace(root, store=root.parent / "store")
        self.names, self.numbers, self.journal = names, count(), journal
        self.runs: list[str] = []

    def action(self) -> None:
        with goex.run("bench", journal=self.journal) as run:
            result = self.ws.run_shell(command(self.names, next(self.numbers)))
        assert result.exit_code == 0 and len(result.changes) == CHANGED, result
        self.runs.append(run.id)

    def undo(self) -> None:
        goex.rollback(self.runs[-1], journal=self.journal)


def interleaved(operations: list[Callable[[], None]], rounds: int) -> list[Timing]:
    """Time each operation once per round, in turn, so that load from elsewhere hits all alike."""
    samples: list[list[float]] = [[] for _ in operations]
    for _ in range(rounds):
        for operation, kept in zip(operations, samples, strict=True):
            start = time.perf_counter()
            operation()
            kept.append(time.perf_counter() - start)
    return [Timing(s) for s in samples]


def tree(files: int, where: Path) -> tuple[Path, list[str]]:
    root = where / "ws"
    root.mkdir(parents=True)
    return root, make_tree(root, files)


def main(quick: bool = False) -> Report:
    report = Report("fs")
    big, small, rounds = (5_000, 500, 7) if quick else (50_000, 1_000, 15)
    tmp = Path(tempfile.mkdtemp(prefix="goex-bench-fs-"))
    try:
        journal = goex.Journal(f"sqlite:///{tmp}/journal.db")
        git_root, names = tree(big, tmp / "git")
        shutil.copytree(git_root, tmp / "goex" / "ws")
        small_root, small_names = tree(small, tmp / "small")
        git = GitCheckpoints(git_root, names)
        ours = GoexCheckpoints(tmp / "goex" / "ws", names, journal)
        ours_small = GoexCheckpoints(small_root, small_names, journal)
        git_action, goex_action, small_action = interleaved(
            [git.action, ours.action, ours_small.action], rounds
        )

        def both_undo() -> None:
            git.action()
            ours.action()

        git_undo, goex_undo = [
            measure(u, rounds=rounds, setup=both_undo) for u in (git.undo, ours.undo)
        ]
        add = _adder(report, big)
        add(
            "action + checkpoint",
            "git add -A && git commit",
            git_action,
            goex_action,
            git.first_snapshot,
        )
        add("undo one action", "git reset --hard HEAD~1", git_undo, goex_undo, None)
        report.add(
            Row(
                benchmark="fs growth",
                case=f"run_shell, {big} files vs {small} files",
                baseline_s=small_action.median,
                goex_s=goex_action.median,
                spread=goex_action.spread,
                target="< 1.5x (cost follows the change, not the tree)",
                met=goex_action.median < 1.5 * small_action.median,
                extra={"baseline_spread": small_action.spread},
            )
        )
        journal.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.write()
    return report


def _adder(report: Report, files: int) -> Callable[[str, str, Timing, Timing, float | None], None]:
    def add(what: str, baseline: str, base: Timing, timed: Timing, first: float | None) -> None:
        extra: dict[str, object] = {"baseline": baseline, "baseline_spread": base.spread}
        if first is not None:
            extra["git_first_snapshot_s"] = first
        report.add(
            Row(
                benchmark=f"fs {what}",
                case=f"{files} files, {CHANGED} changed",
                baseline_s=base.median,
                goex_s=timed.median,
                spread=timed.spread,
                target="faster than git",
                met=timed.median < base.median,
                extra=extra,
            )
        )

    return add


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
