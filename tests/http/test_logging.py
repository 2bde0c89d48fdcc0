"""Log records never hold a secret value, from any logger, at any level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import goex_tools as goex
from goex_tools import Journal
from goex_tools.domains.http import HttpTool, HttpUnreachable
from goex_tools.redaction import MASK
from tests.http.conftest import AUTH, TOKEN
from tests.http.service import Service
from tests.http.test_secrets import closed_port


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on the root and on every logger there is, those that do not propagate
    (uvicorn's access log) included."""
    caplog.set_level(logging.DEBUG)
    attached: list[logging.Logger] = []
    for name, found in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(found, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            if not found.propagate:
                found.addHandler(caplog.handler)
                attached.append(found)
    yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)


def leaks(caplog: pytest.LogCaptureFixture, value: str) -> list[str]:
    """Every record (all its fields, and as formatted) that holds `value`."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if value in repr(vars(r)) or value in caplog.handler.format(r)
    ]


def test_no_log_record_holds_a_secret_even_when_the_service_echoes_it(
    api: HttpTool, service: Service, sqlite_journal: Journal, every_log: pytest.LogCaptureFixture
) -> None:
    with goex.run(journal=sqlite_journal):
        result = api.request(
            "POST",
            f"{service.url}/echo?echo_headers=1&key={{{{secret:items}}}}",
            {**AUTH, "X-Api-Key": "{{secret:items}}"},
            {"token": "{{secret:items}}"},
        )
        with pytest.raises(HttpUnreachable):
            api.request("GET", f"http://127.0.0.1:{closed_port()}/?key={{{{secret:items}}}}", AUTH)
    # the service got the token and sent it back in headers and body; the model sees the mask
    assert service.state.echoed[-1]["query"] == {"echo_headers": "1", "key": TOKEN}
    assert result.headers["x-echo-authorization"] == f"Bearer {MASK}"
    assert result.body["body"] == f'{{"token":"{MASK}"}}'

    names = {r.name for r in every_log.records}
    # httpx's request line, and httpcore's response headers, were logged (masked)
    assert {"httpx", "httpcore.http11", "httpcore.connection"} <= names
    headers_logged = [
        r.getMessage()
        for r in every_log.records
        if r.name == "httpcore.http11" and "x-echo-x-api-key" in r.getMessage()
    ]
    assert headers_logged and all(MASK in m for m in headers_logged)
    assert leaks(every_log, TOKEN) == []


def test_any_logger_argument_or_traceback_holding_a_secret_is_masked(
    service: Service, every_log: pytest.LogCaptureFixture
) -> None:
    HttpTool().classify("GET", f"{service.url}/echo", AUTH)  # looks the token up: registered
    app = logging.getLogger("some.application")
    app.debug("calling with %s", TOKEN)
    app.info("token=%(token)s", {"token": TOKEN})
    app.warning("bad format %d", TOKEN)  # a broken record: logging prints its arguments
    try:
        raise ValueError(f"the service refused {TOKEN}")
    except ValueError:
        app.exception("request failed")
    app.error("here", stack_info=True, extra={"note": "not a secret"})
    assert len(every_log.records) >= 5
    assert leaks(every_log, TOKEN) == []
    messages = [r.getMessage() for r in every_log.records if r.name == "some.application"]
    assert messages[:2] == [f"calling with {MASK}", f"token={MASK}"]
    failed = next(r for r in every_log.records if r.getMessage() == "request failed")
    assert failed.exc_info is None and failed.exc_text is not None
    assert f"ValueError: the service refused {MASK}" in failed.exc_text
    assert "ValueError" in every_log.text  # the traceback still reaches the log
