"""A secret echoed back in any encoding reaches neither the model, nor the journal (its
files, WAL included), nor `goex show`, nor the logs.

The service echoes what it received the way real ones do: JSON escaped by PHP (`\\/`) or
.NET (`\\u002B`), the query with lower-case percent escapes, form-encoded, the Authorization
header base64-encoded, Basic credentials decoded, a token split over two fields.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal
from goex_tools.cli import main
from goex_tools.domains.http import HttpTool
from goex_tools.redaction import MASK, redact
from goex_tools.secrets import register
from tests.http.leaks import file_leaks, forms, leaks
from tests.http.service import Service

ODD = "tok/7f3a+9c2e 51d8<4b06>'&x"  # every encoder writes `/ + space < > ' &` differently
BASIC = base64.b64encode(b"agent:pa55/w0rd+x-91").decode()  # `Basic` credentials
STYLES = ["php", "dotnet", "query", "form", "base64", "basic", "split"]


@pytest.fixture
def odd_secrets(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("ODD", ODD), ("BASIC", BASIC)):
        monkeypatch.setenv(f"GOEX_SECRET_{name}", value)
        monkeypatch.setenv(f"GOEX_SECRET_{name}_HOSTS", "127.0.0.1")


def show_json(journal: Journal, run_id: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--journal", journal.url, "show", run_id, "--json"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("style", STYLES)
def test_an_echoed_secret_is_masked_in_every_encoding(
    style: str,
    odd_secrets: None,
    service: Service,
    sqlite_journal: Journal,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with goex.run(journal=sqlite_journal) as run:
        result = HttpTool().request(
            "POST",
            f"{service.url}/echo?style={style}&key={{{{secret:odd}}}}",
            {"Authorization": "Basic {{secret:basic}}", "X-Key": "{{secret:odd}}"},
            {"token": "{{secret:odd}}"},
        )
    got = service.state.echoed[-1]
    assert got["query"]["key"] == ODD and got["headers"]["authorization"] == f"Basic {BASIC}"
    shown = result.model_dump_json()
    assert MASK in shown  # the service did echo the secret, in this style
    assert leaks(shown, ODD, BASIC) == []
    assert leaks(json.dumps(result.body), ODD, BASIC) == []
    assert leaks(show_json(sqlite_journal, run.id), ODD, BASIC) == []
    assert file_leaks(tmp_path, ODD, BASIC) == []
    assert leaks(caplog.text, ODD, BASIC) == []


def test_every_derived_form_of_a_registered_value_is_masked() -> None:
    """Straight to the redactor: each form the leak scan knows, alone and inside text."""
    register(ODD)
    register(BASIC)
    for secret in (ODD, BASIC):
        for name, form in forms(secret).items():
            for text in (form, f"x{form}y", f"a {form}\n", json.dumps({"v": [form]})):
                assert leaks(json.dumps(redact(text)), secret) == [], (name, text)


def test_forms_mixed_in_one_value_are_masked() -> None:
    """One escape style per character is not assumed: a value half percent-encoded, half
    JSON-escaped, in either case, is still the secret."""
    register(ODD)
    mixed = "tok%2f7f3a\\u002b9c2e+51d8%3C4b06&gt;&#39;&#x26;x"
    assert redact(f"[{mixed}]") == f"[{MASK}]"
