"""Fixtures for the framework integrations: a real workspace and its complete manifest."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def manifest(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every entry under `root`: (type, mode, size, sha256 or link target)."""
    entries: dict[str, tuple[str, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("link", 0, 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(st.st_mode), 0, "")
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, digest)
    return entries


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "notes.txt").write_text("first line\n")
    (root / "keep.txt").write_text("original\n")
    return root


LLAMAINDEX_WARNINGS = [  # raised by LlamaIndex itself when it builds an agent
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]

REPO = Path(__file__).resolve().parents[2]


def load_demo() -> Any:
    """scripts/demo.py as a module: its DemoWorld is the notebooks' and the demo's world."""
    if "goex_demo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("goex_demo", REPO / "scripts" / "demo.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["goex_demo"] = module
        spec.loader.exec_module(module)
    return sys.modules["goex_demo"]


@pytest.fixture
def world() -> Iterator[Any]:
    """A temporary workspace, SQLite database and HTTP service (the demo's), and a journal."""
    created = load_demo().DemoWorld()
    yield created
    created.close()
