"""A malformed policy file gives an error naming its file and line, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal
from goex_tools.policy import Policy, PolicyError, load_policy

GOOD = """\
default: refuse
irreversible: ask
approval: confirm-irreversible
budgets:
  max_steps: 10
fs:
  rules:
    - paths: ["src/**"]
      decision: allow
    - name: no-secrets
      paths: ["**/.env"]
      decision: refuse
sql:
  rules:
    - kinds: [ddl]
      decision: refuse
http:
  rules:
    - hosts: ["127.0.0.1"]
      methods: [GET]
      decision: allow
"""


def test_a_valid_file_loads_every_part(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    source = load_policy(path)
    config = source.config
    assert config.default == "refuse" and config.approval == "confirm-irreversible"
    assert config.budgets.max_steps == 10
    assert [r.name for r in config.fs.rules] == [None, "no-secrets"]
    assert config.sql.rules[0].kinds == ["ddl"]
    assert config.http.rules[0].hosts == ["127.0.0.1"]
    assert source.where("fs", "rules", 1) == f"{path}:10"


@pytest.mark.parametrize(
    ("broken", "line", "message"),
    [
        (
            GOOD.replace("      decision: refuse\nsql", "      decision: forbid\nsql"),
            12,
            "fs.rules[1].decision: Input should be 'allow', 'ask' or 'refuse'",
        ),
        (
            GOOD.replace("max_steps: 10", "max_steps: -1"),
            5,
            "budgets.max_steps: Input should be greater than or equal to 0",
        ),
        (
            GOOD.replace("methods: [GET]", "method: [GET]"),
            20,
            "http.rules[0].method: Extra inputs are not permitted",
        ),
        (
            GOOD.replace("  - kinds: [ddl]", "  - kinds: [drop]"),
            15,
            "sql.rules[0].kinds[0]: Input should be 'read', 'write', 'ddl' or 'other'",
        ),
        (
            GOOD.replace(
                '    - paths: ["src/**"]\n', '    - paths: ["src/**"]\n      commands: [ls]\n'
            ),
            8,
            "fs.rules[0]: Value error, a rule matches either paths or commands, not both",
        ),
        (
            GOOD.replace("approval: confirm-irreversible", "approval: sometimes"),
            3,
            "approval: Input should be 'auto', 'confirm-irreversible' or 'confirm-all'",
        ),
    ],
)
def test_an_invalid_value_names_its_line(
    tmp_path: Path, broken: str, line: int, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(broken)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [f"{path}:{line}: {message}"]


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace('      paths: ["**/.env"]', '      paths: ["**/.env"'))
    with pytest.raises(PolicyError, match=rf"{path}:12: not valid YAML"):
        load_policy(path)


TOML = """\
default = "refuse"

[budgets]
max_http_calls = 3

[[fs.rules]]
paths = ["src/**"]
decision = "allow"

[[fs.rules]]
paths = ["**/.env"]
decision = "never"
"""


def test_toml_files_validate_with_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(TOML.replace('"never"', '"refuse"'))
    assert load_policy(path).config.budgets.max_http_calls == 3
    path.write_text(TOML)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [
        f"{path}:12: fs.rules[1].decision: Input should be 'allow', 'ask' or 'refuse'"
    ]
    path.write_text(TOML.replace("max_http_calls = 3", "max_http_calls = = 3"))
    with pytest.raises(PolicyError, match=rf"{path}:4: not valid TOML"):
        load_policy(path)


def test_every_problem_is_listed_and_a_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("default: never\nirreversible: maybe\nfs: []\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert [p.split(": ")[0] for p in caught.value.problems] == [
        f"{path}:1",
        f"{path}:2",
        f"{path}:3",
    ]
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_nothing_runs_when_the_policy_is_malformed(tmp_path: Path, sqlite_journal: Journal) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("fs:\n  rules:\n    - paths: src/**\n      decision: allow\n")
    target = tmp_path / "never.txt"
    with (
        pytest.raises(PolicyError, match=rf"{path}:3: fs.rules\[0\].paths: Input should be"),
        goex.run("agent", journal=sqlite_journal, gate=Policy.from_file(path)),
    ):
        target.write_text("ran")
    assert not target.exists()
    assert sqlite_journal.list_runs() == []


def test_a_duplicated_key_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys; a policy that quietly loses a line is refused."""
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("approval: confirm-irreversible\n", "default: allow\n"))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [f"{path}:3: default: duplicate key (first on line 1)"]
    path.write_text(GOOD.replace("      decision: allow\n", "      decision: allow\n" * 2, 1))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [
        f"{path}:10: fs.rules[0].decision: duplicate key (first on line 9)"
    ]
