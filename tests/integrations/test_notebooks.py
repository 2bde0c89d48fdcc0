"""The notebooks run end to end (agent acts on real files, database and service; rollback)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integrations.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook_per_framework() -> None:
    assert [p.name for p in NOTEBOOKS] == ["langchain_rollback.ipynb", "llamaindex_rollback.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_restores_everything(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [
        out.get("text", "") + str(out.get("data", {}).get("text/html", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    ]
    text = html.unescape("\n".join(outputs))
    assert "restored exactly" in text
    assert "undid 1 step(s) in this rollback; 1 of the run's 7 effect(s)" in text  # the last
    assert "undid 6 step(s) in this rollback; 7 of the run's 7 effect(s)" in text  # the rest
    assert "compensated" in text and "--- a/config.toml" in text  # the review shows diffs
    # the review numbers the tool calls 1..7 and shows the rows run_sql changed
    numbers = re.findall(r"<tr><td style='text-align:left'>([0-9.]+)</td>", text)
    assert numbers[:7] == [str(n) for n in range(1, 8)]
    assert "- {'id': 2, 'name': 'Grace', 'tier': 'silver'}" in text
    assert "+ {'id': 2, 'name': 'Grace', 'tier': 'gold'}" in text
    assert ", journal='sqlite:///" in text  # the hint names the notebook's journal
