"""Module-level actions with an exact and a semantic undo (importable by a rollback process).

A "ticket" is a JSON file. Creating one is undone exactly by removing it; opening an
"issue" (which, like GitHub's, cannot be deleted) is undone semantically by closing it.
"""

from __future__ import annotations

import json
from pathlib import Path

from goex_tools import reversible


def remove_ticket(path: str, **_: object) -> None:
    Path(path).unlink()


@reversible(undo=remove_ticket)
def create_ticket(path: str, title: str) -> None:
    Path(path).write_text(json.dumps({"title": title}))


def close_issue(path: str, **_: object) -> None:
    data = json.loads(Path(path).read_text())
    Path(path).write_text(json.dumps({**data, "state": "closed"}))


@reversible(undo=close_issue, semantic=True)
def open_issue(path: str, title: str) -> None:
    Path(path).write_text(json.dumps({"title": title, "state": "open"}))
