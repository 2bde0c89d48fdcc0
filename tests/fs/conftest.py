"""Fixtures for the filesystem domain: a seeded workspace, its store, a journal, manifests.

`manifest` is written here independently of goex's own `Entry` code, so that the tests do
not check the implementation against itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools.domains.fs import Workspace

Manifest = dict[str, tuple[str, int, int, str, str]]


def manifest(root: Path) -> Manifest:
    """Every path under `root` (and root itself): type, mode, size, sha256, link target."""
    found: Manifest = {".": _row(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = _row(path)
    return dict(sorted(found.items()))


def _row(path: Path) -> tuple[str, int, int, str, str]:
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ("symlink", 0, 0, "", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", mode, 0, "", "")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or socket: never opened (a FIFO would block)
        return ("special", mode, 0, "", "")
    return ("file", mode, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest(), "")


def seed(root: Path) -> None:
    """A small tree with every kind of thing a restore must bring back."""
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("def f():\n    return 'alpha'\n")
    (root / "src" / "main.py").write_text("from pkg.mod import f\nprint(f())\n")
    (root / "README.md").write_text("# demo\nalpha beta\n")
    run_sh = root / "run.sh"
    run_sh.write_text("#!/bin/sh\necho run\n")
    run_sh.chmod(0o755)
    (root / "secret.key").write_bytes(b"key")
    (root / "secret.key").chmod(0o600)
    (root / "data.bin").write_bytes(bytes(range(256)) * 8)
    (root / "empty").mkdir()
    (root / "locked").mkdir()
    (root / "locked" / "ro.txt").write_text("read only")
    (root / "locked" / "ro.txt").chmod(0o444)
    (root / "link-to-readme").symlink_to("README.md")
    (root / "dangling").symlink_to("does/not/exist")
    with tarfile.open(root / "bundle.tar", "w") as tar:
        for name in ("src", "run.sh", "link-to-readme"):
            tar.add(root / name, arcname=f"bundle/{name}")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def git_state(root: Path) -> dict[str, str]:
    """What a git user sees: branches, HEAD, log, status, index contents."""
    return {
        "branches": git(root, "branch", "-a", "-v", "--no-abbrev"),
        "head": git(root, "rev-parse", "HEAD"),
        "log": git(root, "log", "--all", "--format=%H %P %s"),
        "status": git(root, "status", "--porcelain=v2", "--branch"),
        "index": git(root, "ls-files", "--stage"),
    }


CONFINING = ("bwrap", "docker")  # the backends that confine a command


@functools.cache
def engine_problem() -> str | None:
    from goex_tools.sandbox import get_sandbox

    return get_sandbox("docker").problem()


def require_engine() -> None:
    """Fail (never skip) a docker test where the docker backend does not work."""
    problem = engine_problem()
    if problem is not None:
        pytest.fail(
            f"the docker backend does not work here ({problem}); run the tests with "
            f"`bash scripts/test.sh`, which starts an engine and builds the image "
            f"(scripts/start-container-engine.sh), or set DOCKER_HOST"
        )


@pytest.fixture(params=CONFINING)
def backend(request: pytest.FixtureRequest) -> str:
    """Each confining sandbox backend in turn: a test using it holds for both."""
    if request.param == "docker":
        require_engine()
    return str(request.param)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[goex.Journal]:
    store = goex.Journal(f"sqlite:///{tmp_path}/journal.db")
    yield store
    store.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    seed(path)
    return path


@pytest.fixture
def ws(root: Path, tmp_path: Path) -> Workspace:
    return Workspace(root, store=tmp_path / "store")


@pytest.fixture
def git_root(root: Path) -> Path:
    """The seeded workspace as a git repository with one commit and a second branch."""
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Dev")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    git(root, "branch", "feature")
    return root
