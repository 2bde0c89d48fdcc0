"""Prism serving GitHub's description, once per test session (it takes ~20 s to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http.github.spec import prism


@pytest.fixture(scope="session")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from prism(tmp_path_factory.mktemp("prism") / "prism.log")
