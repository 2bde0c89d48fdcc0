"""Checkpoint cost of a shell command over a large workspace: goex vs plain git.

A workspace of N small files; a command changes some of them.
- baseline per action: run the command directly, then `git add -A && git commit` (a
  separate git dir, as a checkpointing tool would use); goex: `run_shell` (bwrap sandbox,
  overlay, capture and diff of the changed paths, write-ahead journal, apply).
- baseline undo: `git reset --hard HEAD~1`; goex: rolling back that one step.
- target (issue 4): checkpoint + diff + rollback at least 10x faster than git's commit + reset,
  50,000 files, 10 changed.
- axis 1, workspace size: goex's action time with 1,000 / 10,000 / 50,000 files (10 changed),
  git's beside it; goex's must stay flat (< 1.5x from 1,000 to 50,000 files).
- axis 2, files changed: goex's action time with 1 / 10 / 100 / 1,000 of 50,000 files changed.

Run: .venv/bin/python -m benchmarks.bench_fs [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path

import goex_tools as goex
from benchmarks.harness import Report, Row, interleaved, measure
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


def command(names: list[str], round_no: int, changed: int = CHANGED) -> str:
    step = max(1, len(names) // changed)
    targets = " ".join(names[i * step] for i in range(changed))
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

    def __init__(
        self, root: Path, names: list[str], journal: goex.Journal, changed: int = CHANGED
    ) -> None:
        self.ws = Workspace(root, store=root.parent / "store")
        self.names, self.numbers, self.journal = names, count(), journal
        self.changed = changed
        self.runs: list[str] = []

    def action(self) -> None:
        with goex.run("bench", journal=self.journal) as run:
            result = self.ws.run_shell(command(self.names, next(self.numbers), self.changed))
        assert result.exit_code == 0 and len(result.changes) == self.changed, result
        self.runs.append(run.id)

    def undo(self) -> None:
        goex.rollback(self.runs[-1], journal=self.journal)


def tree(files: int, where: Path) -> tuple[Path, list[str]]:
    root = where / "ws"
    root.mkdir(parents=True)
    return root, make_tree(root, files)


def main(quick: bool = False) -> Report:
    report = Report("fs")
    sizes = [500, 2_000, 5_000] if quick else [1_000, 10_000, 50_000]
    rounds = 5 if quick else 11
    big = sizes[-1]
    tmp = Path(tempfile.mkdtemp(prefix="goex-bench-fs-"))
    try:
        journal = goex.Journal(f"sqlite:///{tmp}/journal.db")
        gits, ours = {}, {}
        for files in sizes:
            git_root, names = tree(files, tmp / f"git{files}")
            shutil.copytree(git_root, tmp / f"goex{files}" / "ws")
            gits[files] = GitCheckpoints(git_root, names)
            ours[files] = GoexCheckpoints(tmp / f"goex{files}" / "ws", names, journal)
        git, mine = gits[big], ours[big]
        git_action, goex_action = interleaved([git.action, mine.action], rounds=rounds)

        def both_act() -> None:
            git.action()
            mine.action()

        git_undo, goex_undo = [
            measure(u, rounds=rounds, setup=both_act) for u in (git.undo, mine.undo)
        ]
        case = f"{big:,} files, {CHANGED} changed"
        extra = {"git_first_snapshot_s": git.first_snapshot}
        report.compare("fs action + checkpoint", case, git_action, goex_action, extra=extra)
        report.compare("fs undo one action", case, git_undo, goex_undo)
        base = git_action.median + git_undo.median
        timed = goex_action.median + goex_undo.median
        report.add(
            Row(
                benchmark="fs checkpoint+diff+undo",
                case=case + " (sum of medians)",
                baseline_s=base,
                goex_s=timed,
                spread=max(goex_action.spread, goex_undo.spread),
                target=">= 10x faster than git (x <= 0.10)",
                met=timed <= base / 10,
                extra={"baseline": "git add -A && git commit + git reset --hard HEAD~1"},
            )
        )
        size_axis(report, gits, ours, sizes, rounds)
        changed_axis(report, tmp, mine.names, journal, big, rounds)
        journal.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.write()
    return report


def size_axis(
    report: Report,
    gits: dict[int, GitCheckpoints],
    ours: dict[int, GoexCheckpoints],
    sizes: list[int],
    rounds: int,
) -> None:
    """Per-action time against workspace size: goex stays flat, git grows."""
    small = sizes[0]
    timings = interleaved(
        [op for n in sizes for op in (gits[n].action, ours[n].action)], rounds=rounds
    )
    by_size = {n: (timings[2 * i], timings[2 * i + 1]) for i, n in enumerate(sizes)}
    for files in sizes:
        git_t, goex_t = by_size[files]
        report.compare(
            "fs axis: workspace size", f"{files:,} files, {CHANGED} changed", git_t, goex_t
        )
    for who, index in (("goex", 1), ("git", 0)):
        first, last = by_size[small][index], by_size[sizes[-1]][index]
        report.add(
            Row(
                benchmark="fs growth",
                case=f"{who}: {sizes[-1]:,} vs {small:,} files",
                baseline_s=first.median,
                goex_s=last.median,
                spread=last.spread,
                target="< 1.5x (cost follows the change, not the tree)" if who == "goex" else "",
                met=last.median < 1.5 * first.median if who == "goex" else None,
            )
        )


def changed_axis(
    report: Report, tmp: Path, names: list[str], journal: goex.Journal, files: int, rounds: int
) -> None:
    """Per-action time against the number of files a command changes, in the big workspace."""
    counts = [1, 10, 100, 1_000]
    root = tmp / f"goex{files}" / "ws"
    runners = [GoexCheckpoints(root, names, journal, changed=n) for n in counts]
    timings = interleaved([r.action for r in runners], rounds=max(3, rounds // 2))
    for n, timed in zip(counts, timings, strict=True):
        case = f"{files:,} files, {n:,} changed (baseline: 1 changed)"
        report.compare("fs axis: files changed", case, timings[0], timed)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
