"""`goex doctor`: each check does the real thing on this machine, and says what it found."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from goex_tools.cli import main

SECRET = "s3cr3t-value-never-shown"


def doctor_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["detail"]) for c in report["checks"]}


@pytest.fixture
def secrets_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOEX_SECRET_GITHUB", SECRET)
    monkeypatch.setenv("GOEX_SECRET_GITHUB_HOSTS", "api.github.com")
    path = tmp_path / "secrets.toml"
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(path))
    return path


def test_doctor_reports_what_works_here(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, secrets_env: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: allow\n")
    code, report = doctor_json(
        capsys, "--journal", f"sqlite:///{tmp_path}/j.db", "--policy", str(policy)
    )
    checks = by_name(report)
    assert code == 0 and report["ok"] is True
    assert checks["sandbox:bwrap"] == ("ok", "works")
    assert checks["sandbox:docker"] == (  # the engine scripts/test.sh starts
        "ok",
        f"works (engine at {os.environ['DOCKER_HOST']}, default image goex-sandbox:bookworm)",
    )
    assert checks["network isolation (docker)"][0] == "ok"
    assert checks["sockets hidden (docker)"][0] == "ok"
    assert checks["network isolation"] == (
        "ok",
        "bwrap: no network unless allowed (a local TCP server was unreachable)",
    )
    assert checks["journal"] == ("ok", f"Journal('sqlite:///{tmp_path}/j.db') reachable, 0 run(s)")
    assert checks["secrets:environment"] == ("ok", "1 secret(s): GITHUB")
    assert checks["secrets:file"] == ("ok", f"{secrets_env}: absent")
    assert checks["policy"] == ("ok", f"{policy}: valid; sandbox bwrap available")
    assert SECRET not in json.dumps(report)


def test_doctor_fails_on_an_unreachable_journal_a_readable_secrets_file_and_a_bad_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, secrets_env: Path
) -> None:
    secrets_env.write_text(f'[github]\nvalue = "{SECRET}"\nhosts = ["api.github.com"]\n')
    secrets_env.chmod(0o644)
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: allow\nfs:\n  network: sometimes\n")
    code, report = doctor_json(
        capsys,
        "--journal",
        "postgresql+psycopg://postgres@127.0.0.1:1/none",
        "--policy",
        str(policy),
    )
    checks = by_name(report)
    assert code == 1 and report["ok"] is False
    assert checks["journal"][0] == "fail" and "Connection refused" in checks["journal"][1]
    assert checks["secrets:file"][0] == "fail" and "chmod 600" in checks["secrets:file"][1]
    assert checks["policy"] == (
        "fail",
        f"{policy}:3: fs.network: Input should be 'allow', 'ask' or 'refuse'",
    )
    assert SECRET not in json.dumps(report)


def test_doctor_prints_a_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["doctor", "--journal", f"sqlite:///{tmp_path}/j.db"]) == 0
    out = capsys.readouterr().out
    assert "goex doctor" in out and "network isolation" in out and "sandbox:bwrap" in out
