"""run_shell wherever the workspace, the store and the tools live, and as an ordinary user.

bubblewrap gives the command a private /tmp, so a workspace, a store or a virtualenv under
/tmp is the case that breaks first; an ordinary user needs a user namespace and `userxattr`
overlays, a code path root never takes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools.domains.fs import Workspace
from tests.fs.conftest import manifest, seed

REPO = Path(__file__).resolve().parents[2]
COMMAND = "sed -i s/alpha/moved/ README.md && rm -rf src && mv empty emptied && pwd"

BASES = {
    "tmp": lambda: Path(tempfile.gettempdir()),
    "var_tmp": lambda: Path("/var/tmp"),
    "home": Path.home,
}


@pytest.fixture
def scratch_dirs() -> Iterator[dict[str, Path]]:
    """A fresh directory under /tmp, /var/tmp and the home directory, removed afterwards."""
    made = {}
    for name, base in BASES.items():
        if not os.access(base(), os.W_OK):
            pytest.skip(f"{base()} is not writable here")
        made[name] = Path(os.path.realpath(tempfile.mkdtemp(dir=base(), prefix="goex-loc-")))
    yield made
    for path in made.values():
        shutil.rmtree(path)


@pytest.mark.parametrize(
    ("ws_base", "store_base"),
    [("tmp", "tmp"), ("tmp", "home"), ("var_tmp", "tmp"), ("home", "home"), ("home", "var_tmp")],
)
def test_run_shell_and_rollback_wherever_workspace_and_store_live(
    scratch_dirs: dict[str, Path], tmp_path: Path, ws_base: str, store_base: str
) -> None:
    root = scratch_dirs[ws_base] / "ws"
    root.mkdir()
    seed(root)
    before = manifest(root)
    ws = Workspace(root, store=scratch_dirs[store_base] / "store")
    journal = goex.Journal(f"sqlite:///{tmp_path}/journal.db")
    try:
        with goex.run("where", journal=journal) as run:
            result = ws.run_shell(COMMAND)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == f"{root}\n"  # the command runs at the workspace's own path
        assert (root / "README.md").read_text() == "# demo\nmoved beta\n"
        assert not (root / "src").exists() and (root / "emptied").is_dir()
        goex.rollback(run.id, journal=journal)
        assert manifest(root) == before
    finally:
        journal.close()


@pytest.fixture
def venv_under_tmp() -> Iterator[Path]:
    """A real virtualenv (no pip) and a plain tool directory, both under /tmp."""
    base = Path(os.path.realpath(tempfile.mkdtemp(prefix="goex-venv-")))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    tools = base / "tools"
    tools.mkdir()
    (tools / "hello-goex").write_text("#!/bin/sh\necho hello from $0\n")
    (tools / "hello-goex").chmod(0o755)
    yield base
    shutil.rmtree(base)


def test_a_virtualenv_and_tools_under_tmp_stay_usable_and_read_only_in_the_sandbox(
    ws: Workspace, journal: goex.Journal, venv_under_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv, tools = venv_under_tmp / "venv", venv_under_tmp / "tools"
    monkeypatch.setenv("PATH", f"{venv}/bin{os.pathsep}{tools}{os.pathsep}{os.environ['PATH']}")
    (venv_under_tmp / "beside.txt").write_text("not on PATH")
    command = (
        "python -c 'import sys; print(sys.prefix)' && hello-goex && "
        f"touch {venv}/planted; touch {tools}/planted; cat {venv_under_tmp}/beside.txt"
    )
    with goex.run("venv", journal=journal):
        result = ws.run_shell(command)
    assert result.stdout.splitlines() == [str(venv), f"hello from {tools}/hello-goex"]
    assert "beside.txt: No such file" in result.stderr  # the rest of /tmp stays private
    assert result.stderr.count("Read-only file system") == 2
    assert not (venv / "planted").exists() and not (tools / "planted").exists()


NOBODY = 65534
AS_USER = """
import json, shutil, subprocess, sys
from pathlib import Path
import goex_tools as goex
from goex_tools.domains.fs import Workspace
from tests.fs.conftest import manifest, seed
from tests.fs.test_shell import COMMANDS, reference

base = Path(sys.argv[1])
root = base / "ws"
root.mkdir()
seed(root)
before = manifest(root)
ws = Workspace(root, store=base / "store", sandbox=sys.argv[2])
journal = goex.Journal(f"sqlite:///{base}/journal.db")
report = {}
for name, command in sorted(COMMANDS.items()):
    expected = reference(root, base, command)
    subprocess.run(["chmod", "-R", "u+w", str(base / "reference")], check=True)
    shutil.rmtree(base / "reference")
    with goex.run(name, journal=journal) as run:
        result = ws.run_shell(command)
    effect_ok = result.exit_code == 0 and manifest(root) == expected
    goex.rollback(run.id, journal=journal)
    report[name] = [effect_ok, manifest(root) == before, result.stderr]
print(json.dumps(report))
"""


def _system_python() -> str | None:
    """An interpreter an ordinary user can run, matching ours (ours may live under /root)."""
    for candidate in (f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.parametrize("backend", ["bwrap", "none"])
def test_an_ordinary_user_gets_the_same_exact_effects_and_rollbacks(backend: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to an ordinary user needs root (as one, every test runs so)")
    python, setpriv = _system_python(), shutil.which("setpriv")
    if python is None or setpriv is None:
        pytest.skip("needs setpriv and a system python of this version for an ordinary user")
    paths = sysconfig.get_paths()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([paths["purelib"], paths["platlib"], str(REPO)]),
        "LANG": "C.UTF-8",
    }
    user = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = subprocess.run(
        [*user, python, "-c", "import goex_tools, pytest"], env=env, capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"an ordinary user cannot import goex-tools here: {probe.stderr[-300:]}")
    base = Path(os.path.realpath(tempfile.mkdtemp(prefix="goex-user-")))
    os.chown(base, NOBODY, NOBODY)
    try:
        env["HOME"] = str(base)
        done = subprocess.run(
            [*user, python, "-c", AS_USER, str(base), backend],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
    finally:
        shutil.rmtree(base)
    assert {name: tuple(row[:2]) for name, row in report.items()} == {
        name: (True, True) for name in report
    }, report
    assert len(report) >= 10
