"""goex's own files (the journal, the blob store, the secrets file) and a workspace.

None of them may lie inside a workspace, where a command or a file tool could read or
rewrite goex's record of what happened (refused before anything runs), and the sandbox
covers each one that something it shows would reveal (`own_paths` -> `Layers.hidden`).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from goex_tools.domains.fs.errors import FsError
from goex_tools.journal import Journal
from goex_tools.secrets import FileSource

SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def journal_file(journal: Journal) -> Path | None:
    """The journal's database file, if it is a SQLite file."""
    try:
        url = make_url(journal.url)
    except Exception:
        return None
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(os.path.realpath(url.database))


def own_paths(journal: Journal, store: Path) -> dict[str, Path]:
    """What goex keeps outside the workspace: what -> where (directories to hide)."""
    found = {"the blob store": store}
    database = journal_file(journal)
    if database is not None:
        found["the journal"] = database.parent
    secrets = Path(os.path.realpath(FileSource().path))
    found["the secrets file"] = secrets.parent
    return found


def refuse_inside(root: Path, journal: Journal) -> None:
    """Refuse to act on a workspace that holds the journal or the secrets file."""
    database = journal_file(journal)
    inside = []
    if database is not None:
        for suffix in SQLITE_SIDE_FILES:
            if _within(Path(f"{database}{suffix}"), root):
                inside.append(f"the journal {database}")
                break
    secrets = Path(os.path.realpath(FileSource().path))
    if _within(secrets, root):
        inside.append(f"the secrets file {secrets}")
    if inside:
        raise FsError(
            f"{' and '.join(inside)} lie inside the workspace {root}, where a command could "
            f"read or rewrite them; keep them outside it. Nothing was done"
        )


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
