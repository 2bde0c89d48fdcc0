"""The npm packages the tests run (tests/support/npm/package.json, pinned by its lock file):
GitHub's OpenAPI description (`@octokit/openapi`), Stoplight Prism (`@stoplight/prism-cli`)
and an OAuth 2.0 / OpenID Connect server (`oidc-provider`).

`scripts/setup.sh --dev` installs them once (`python -m tests.support.npm`) into a cache
directory named after the lock file's hash (`GOEX_NPM_CACHE`, default
~/.cache/goex-tools/npm-<hash>), so a changed lock file installs afresh and an unchanged one
costs nothing. A test that needs them and finds them missing installs them the same way,
and fails saying why if it cannot (no npm, no registry).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "npm"
INSTALL_TIMEOUT = 600  # seconds; a fresh install of the three is about 20 s here


def cache_dir() -> Path:
    configured = os.environ.get("GOEX_NPM_CACHE")
    if configured:
        return Path(configured)
    lock = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()[:12]
    return Path.home() / ".cache" / "goex-tools" / f"npm-{lock}"


def installed() -> Path | None:
    """The directory holding node_modules, if the packages are installed."""
    root = cache_dir()
    return root if (root / "node_modules" / ".installed").exists() else None


def install() -> Path:
    """`npm ci` into a fresh directory, moved into place once complete. Raises
    RuntimeError saying why when it cannot."""
    done = installed()
    if done is not None:
        return done
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("Node.js and npm are needed (scripts/setup.sh --dev installs them)")
    root = cache_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    for name in ("package.json", "package-lock.json"):
        shutil.copy(HERE / name, staging / name)
    command = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--prefix", str(staging)]
    try:
        done_process = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, cwd=staging
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"npm ci took more than {INSTALL_TIMEOUT} s") from None
    if done_process.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"npm ci failed: {done_process.stderr[-2000:]}")
    (staging / "node_modules" / ".installed").touch()
    try:
        staging.rename(root)
    except OSError:  # another process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return root


def packages() -> Path:
    """node_modules, installed if need be; the test fails (not skips) if that cannot be."""
    try:
        return install() / "node_modules"
    except RuntimeError as exc:
        pytest.fail(f"the npm packages the tests need are missing: {exc}")


if __name__ == "__main__":
    print(install())
    sys.exit(0)
