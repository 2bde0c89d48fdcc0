"""The integrations' README examples run as written (in a fresh directory and process) and
leave nothing behind after their rollbacks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.conftest import REPO

READMES = [
    REPO / "integrations" / "langchain-goex" / "README.md",
    REPO / "integrations" / "llama-index-tools-goex" / "README.md",
]
CHECK = """
assert not Path("project/plan.md").exists()
rows = sqlite3.connect("shop.db").execute("SELECT * FROM items").fetchall()
assert rows == [], rows
steps = goex.get_journal().steps(str(run_id))
assert [s.status.value for s in steps if s.parent_id] == ["compensated"] * 2, steps
print("README example restored everything")
"""


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_readme_example_runs_and_rolls_back(readme: Path, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.DOTALL)
    assert blocks, f"{readme} has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0] + CHECK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOEX_", "OPENAI_"))}
    env["PYTHONWARNINGS"] = "ignore"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "README example restored everything" in done.stdout
