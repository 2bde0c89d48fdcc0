"""The notebooks run end to end (agent acts on real files, database and service; rollback,
and time travel that rewinds the world with the agent)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integrations.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ROLLBACK = [p for p in NOTEBOOKS if p.stem.endswith("_rollback")]


def test_there_is_a_notebook_per_framework_and_one_for_time_travel() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "langchain_rollback.ipynb",
        "langgraph_time_travel.ipynb",
        "llamaindex_rollback.ipynb",
    ]


def executed(path: Path) -> str:
    """Run the notebook end to end; the text of every output (HTML unescaped)."""
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
    return html.unescape("\n".join(outputs))


@pytest.mark.parametrize("path", ROLLBACK, ids=lambda p: p.stem)
def test_notebook_runs_and_restores_everything(path: Path) -> None:
    text = executed(path)
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


def test_time_travel_notebook_rewinds_the_world_with_the_agent_and_replays() -> None:
    text = executed(REPO / "notebooks" / "langgraph_time_travel.ipynb")
    assert "undid 2 step(s) of 2 run(s)" in text  # the second turn's two calls
    assert "the world is as it was at that checkpoint" in text
    assert "gift card in the catalog: False" in text
    assert "the replay reached the same end state as the first run" in text
    assert "write_file     conflict" in text and "stopped before undoing anything" in text
    assert "undid 4 step(s) of 4 run(s): the world as at checkpoint" in text
    assert "restored exactly" in text
