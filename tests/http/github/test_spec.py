"""`add_openapi` on GitHub's own description (13 MB): indexed once per content, the rules
kept under the document's SHA-256 (timings: benchmarks/bench_http.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goex_tools.domains.http import UndoRules, openapi
from goex_tools.domains.http.packs import github
from tests.http.github.spec import document_path


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(openapi.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(openapi, "_memory", {})
    return tmp_path / "cache"


def test_add_openapi_indexes_githubs_document_then_reads_it_from_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = str(document_path())
    first = UndoRules().add_openapi(document).rules
    assert len(first) > 100
    assert any(r.method == "PATCH" and r.url.endswith("/issues/{issue_number}") for r in first)
    assert len(list((cache / "openapi").glob("*.json"))) == 1

    def no_parse(text: str, where: str) -> None:
        raise AssertionError("the cached document was parsed again")

    monkeypatch.setattr(openapi, "_parse", no_parse)
    monkeypatch.setattr(openapi, "_memory", {})  # a new process: the file cache answers
    assert UndoRules().add_openapi(document).rules == first


def test_add_openapi_parses_a_changed_document_again(cache: Path, tmp_path: Path) -> None:
    copy = tmp_path / "api.json"
    copy.write_bytes(document_path().read_bytes())
    before = UndoRules().add_openapi(str(copy)).rules
    text = copy.read_text().replace(
        '"/repos/{owner}/{repo}/issues/{issue_number}": {', '"/x": {', 1
    )
    copy.write_text(text)
    after = UndoRules().add_openapi(str(copy)).rules
    assert len(list((cache / "openapi").glob("*.json"))) == 2
    assert [r for r in after if r.url.endswith("/issues/{issue_number}")] == []
    assert len(after) < len(before)


def test_add_openapi_ignores_a_damaged_cache_file(cache: Path) -> None:
    document = str(document_path())
    first = UndoRules().add_openapi(document).rules
    (stored,) = (cache / "openapi").glob("*.json")
    stored.write_text('[{"action": 5}]')
    openapi._memory.clear()
    assert UndoRules().add_openapi(document).rules == first


def test_the_pack_wins_over_what_inference_gives_for_the_same_call(cache: Path) -> None:
    rules = github.rules().add_openapi(str(document_path()))
    found = rules.match("PATCH", "https://api.github.com/repos/o/r/issues/7")
    assert found is not None and found.rule.source == "registered" and found.rule.project
