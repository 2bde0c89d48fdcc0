"""Symbolic credentials: values never reach the journal, the model, logs or exceptions."""

from __future__ import annotations

import logging
import socket
import stat
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus
from goex_tools.domains.http import (
    HttpError,
    HttpStatusError,
    HttpTool,
    HttpUnreachable,
    InvalidHttpCall,
)
from goex_tools.journal import metadata
from goex_tools.redaction import MASK
from goex_tools.secrets import (
    EnvSource,
    FileSource,
    Secret,
    SecretError,
    SecretNotAllowed,
    SecretStore,
)
from tests.http.conftest import AUTH, TOKEN, seed, state
from tests.http.service import Service

ECHO_HEADERS = {**AUTH, "X-Api-Key": "{{secret:items}}"}


def journal_text(journal: Journal) -> str:
    """Every row of every journal table, as text."""
    with journal.engine.connect() as conn:
        return "\n".join(
            repr(row) for table in metadata.sorted_tables for row in conn.execute(table.select())
        )


def test_an_echoed_secret_reaches_neither_model_nor_journal_nor_logs(
    api: HttpTool, service: Service, sqlite_journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with goex.run(journal=sqlite_journal) as run:
        result = api.request(
            "POST",
            f"{service.url}/echo?key={{{{secret:items}}}}",
            ECHO_HEADERS,
            {"token": "{{secret:items}}", "note": "Bearer {{secret:items}}"},
        )
    # the service received the real value (it echoes it), the model sees the mask
    assert result.body["headers"]["authorization"] == f"Bearer {MASK}"
    assert result.body["headers"]["x-api-key"] == MASK
    assert result.body["query"] == {"key": MASK}
    assert result.body["body"] == f'{{"token":"{MASK}","note":"Bearer {MASK}"}}'
    assert TOKEN not in result.model_dump_json()

    rows = journal_text(sqlite_journal)
    assert TOKEN not in rows
    assert "{{secret:items}}" in rows  # the journal keeps what the agent wrote
    step = sqlite_journal.steps(run.id)[0]
    assert step.inputs["headers"] == ECHO_HEADERS
    assert step.output["body"]["headers"]["authorization"] == f"Bearer {MASK}"

    assert "HTTP Request: POST" in caplog.text  # httpx did log the request line
    assert TOKEN not in caplog.text


def test_secrets_never_appear_in_exceptions(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    with goex.run(journal=sqlite_journal) as run, pytest.raises(HttpStatusError) as failure:
        api.request("GET", f"{service.url}/echo?status=400&key={{{{secret:items}}}}", AUTH)
    message = str(failure.value)
    assert "answered 400" in message and MASK in message
    assert TOKEN not in "".join(traceback.format_exception(failure.value))
    assert failure.value.__cause__ is None and failure.value.__context__ is None

    closed = closed_port()
    with pytest.raises(HttpUnreachable) as unreachable:
        api.request("GET", f"http://127.0.0.1:{closed}/x?key={{{{secret:items}}}}", AUTH)
    assert TOKEN not in "".join(traceback.format_exception(unreachable.value))
    assert "{{secret:items}}" in str(unreachable.value)
    assert unreachable.value.__cause__ is None and unreachable.value.__context__ is None

    steps = sqlite_journal.steps(run.id)
    assert [s.status for s in steps] == [StepStatus.FAILED]
    assert TOKEN not in journal_text(sqlite_journal)


def test_a_placeholder_is_refused_for_a_host_it_is_not_bound_to(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    other_host = f"http://localhost:{service.port}"  # same service, another host name
    with goex.run(journal=sqlite_journal) as run, pytest.raises(SecretNotAllowed) as refused:
        api.request("POST", f"{other_host}/echo", AUTH)
    assert str(refused.value) == (
        "secret 'items' is bound to 127.0.0.1, not to localhost; the request was not sent"
    )
    assert service.state.requests == []
    assert sqlite_journal.steps(run.id) == []
    with pytest.raises(InvalidHttpCall, match="cannot stand in the host part"):
        api.request("GET", "http://{{secret:items}}.example.com/", {})


def test_the_undo_keeps_the_placeholder_and_rebinds_it_at_rollback(
    api: HttpTool, service: Service, sqlite_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = state(service)
    with goex.run(journal=sqlite_journal) as run:
        api.request("POST", f"{service.url}/items", AUTH, {"name": "made"})
    step = sqlite_journal.steps(run.id)[0]
    assert step.compensation is not None
    assert step.compensation.args["headers"] == AUTH

    monkeypatch.setenv("GOEX_SECRET_ITEMS_HOSTS", "api.example.com")
    with pytest.raises(goex.RollbackFailed) as failure:
        goex.rollback(run.id, journal=sqlite_journal)
    assert (
        "is bound to api.example.com, not to 127.0.0.1" in failure.value.report.outcomes[0].detail
    )
    assert len(state(service)["items"]) == 1

    monkeypatch.setenv("GOEX_SECRET_ITEMS_HOSTS", "127.0.0.1")
    goex.rollback(run.id, journal=sqlite_journal)
    assert state(service)["items"] == before["items"]


def test_a_state_holding_a_secret_is_not_journaled_as_an_undo(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    seed(service, {"name": TOKEN})
    with goex.run(journal=sqlite_journal) as run:
        api.request("PATCH", f"{service.url}/items/1", AUTH, {"price": 2.0})
    step = sqlite_journal.steps(run.id)[0]
    reason = (
        "the state read before holds a secret value, which the journal masks, "
        "so it cannot be written back exactly"
    )
    assert step.status is StepStatus.APPLIED and step.notes == [
        f"this step cannot be undone: {reason}"
    ]
    assert step.compensation is not None
    assert step.compensation.description == f"cannot be undone: {reason}"
    assert TOKEN not in journal_text(sqlite_journal)
    changed = state(service)
    with pytest.raises(goex.RollbackFailed) as failure:
        goex.rollback(run.id, journal=sqlite_journal)
    assert failure.value.report.outcomes[0].outcome == "irreversible"
    assert failure.value.report.outcomes[0].detail == f"this step cannot be undone: {reason}"
    assert state(service) == changed


def test_env_source_binding_and_errors() -> None:
    env = {
        "GOEX_SECRET_GITHUB_TOKEN": "ghp-0123456789",
        "GOEX_SECRET_GITHUB_TOKEN_HOSTS": "api.github.com, *.githubusercontent.com",
        "GOEX_SECRET_UNBOUND": "value-0123456789",
        "GOEX_SECRET_SHORT": "abc",
        "GOEX_SECRET_SHORT_HOSTS": "example.com",
    }
    store = SecretStore([EnvSource(env)])
    assert store.value_for("github-token", "api.github.com") == "ghp-0123456789"
    assert store.value_for("github-token", "raw.githubusercontent.com") == "ghp-0123456789"
    for host in ("github.com", "api.github.com.evil.net", "githubusercontent.com.evil"):
        with pytest.raises(SecretNotAllowed):
            store.value_for("github-token", host)
    with pytest.raises(SecretError, match="bound to no host"):
        store.get("unbound")
    with pytest.raises(SecretError, match="shorter than 8"):
        store.get("short")
    with pytest.raises(SecretError, match="unknown secret 'missing'"):
        store.get("missing")
    found = store.get("github-token")
    assert "ghp-0123456789" not in repr(found) and "ghp-0123456789" not in str(found)


def test_file_source_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('[svc]\nvalue = "file-secret-0123"\nhosts = ["svc.internal:8443"]\n')
    path.chmod(0o644)
    store = SecretStore([FileSource(path)])
    with pytest.raises(SecretError, match="others may read it"):
        store.get("svc")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert store.value_for("svc", "svc.internal", 8443) == "file-secret-0123"
    with pytest.raises(SecretNotAllowed):
        store.value_for("svc", "svc.internal", 443)
    assert store.get("svc") == Secret(
        "svc", "file-secret-0123", ("svc.internal:8443",), f"file {path}"
    )
    path.write_text("[svc\n")
    with pytest.raises(SecretError, match="not valid TOML"):
        store.get("svc")


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_goex_rollback_in_another_process_resolves_the_placeholder(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    """The CLI loads the http domain by the kind's prefix and gets the token from its env."""
    seed(service, {"name": "one"})
    before = state(service)
    with goex.run(journal=sqlite_journal) as run:
        api.request("DELETE", f"{service.url}/items/1", AUTH)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "goex_tools.cli",
            "--journal",
            sqlite_journal.url,
            "rollback",
            run.id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert state(service) == before


ODD = "s3cr+t/v=lue&x y%41"  # a value that changes under URL and form encoding


def test_a_secret_in_the_url_arrives_as_it_is_and_is_masked_in_every_form(
    service: Service,
    sqlite_journal: Journal,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("GOEX_SECRET_ODD", ODD)
    monkeypatch.setenv("GOEX_SECRET_ODD_HOSTS", "127.0.0.1")
    caplog.set_level(logging.DEBUG)
    with goex.run(journal=sqlite_journal):
        result = HttpTool().request("GET", f"{service.url}/echo?key={{{{secret:odd}}}}&n=1")
    assert service.state.echoed[-1]["query"] == {"key": ODD, "n": "1"}  # `+` is not a space
    assert result.body["query"] == {"key": MASK, "n": "1"}
    encoded = "s3cr%2Bt%2Fv%3Dlue%26x%20y%2541"
    assert f"?key={MASK}&n=1" in caplog.text  # httpx logged the URL it sent, masked
    for form in (ODD, encoded):
        assert form not in caplog.text and form not in journal_text(sqlite_journal)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("cut", range(0, len(TOKEN) + 1, 3))
def test_a_body_cut_at_the_size_limit_shows_no_part_of_a_secret(
    service: Service, sqlite_journal: Journal, cut: int, streamed: bool
) -> None:
    """The limit falls inside the echoed token: not even its first characters are shown,
    also when the body arrives in pieces and the read stops inside the token."""
    start = len('"' + "x" * 50)  # the body is sent as a JSON string: the token starts here
    api = HttpTool(max_body=start + cut)
    split = f"&split={start + cut + 1}" if streamed else ""
    with goex.run(journal=sqlite_journal):
        result = api.request(
            "POST",
            f"{service.url}/echo?raw=1{split}",
            AUTH,
            f"{'x' * 50}{{{{secret:items}}}}-tail",
        )
    assert result.truncated and result.body.startswith('"' + "x" * 49)
    shown = result.body[start:]  # what is left where the token was
    assert f'{MASK}-tail"'.startswith(shown), shown
    assert TOKEN[:4] not in result.body and TOKEN[:4] not in journal_text(sqlite_journal)


def test_a_secret_that_cannot_go_in_a_header_fails_clearly_and_unchained(
    service: Service, sqlite_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "tök-0123456789abcdef"  # not ASCII: no HTTP header can carry it
    monkeypatch.setenv("GOEX_SECRET_UMLAUT", value)
    monkeypatch.setenv("GOEX_SECRET_UMLAUT_HOSTS", "127.0.0.1")
    with goex.run(journal=sqlite_journal) as run, pytest.raises(HttpError) as failure:
        HttpTool().request("GET", f"{service.url}/echo", {"X-Key": "{{secret:umlaut}}"})
    assert "cannot be sent as written: UnicodeEncodeError" in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__context__ is None
    shown = "".join(traceback.format_exception(failure.value)) + repr(failure.value)
    assert value not in shown
    assert service.state.requests == []
    assert [s.status for s in sqlite_journal.steps(run.id)] == [StepStatus.FAILED]
    assert value not in journal_text(sqlite_journal)


def test_a_binding_to_host_and_port_holds_for_the_schemes_default_port() -> None:
    env = {"GOEX_SECRET_SVC": "svc-0123456789", "GOEX_SECRET_SVC_HOSTS": "api.example.com:443"}
    api = HttpTool(secrets=SecretStore([EnvSource(env)]))
    header = {"Authorization": "Bearer {{secret:svc}}"}
    for url in ("https://api.example.com/x", "https://api.example.com:443/x"):
        assert api.classify("POST", url, header).predicted["host"] == "api.example.com"
    for url in ("http://api.example.com/x", "https://api.example.com:8443/x"):
        with pytest.raises(SecretNotAllowed, match=r"bound to api\.example\.com:443"):
            api.classify("POST", url, header)
    with pytest.raises(InvalidHttpCall, match="bad port"):
        api.classify("GET", "https://api.example.com:99999/x", header)


def test_a_secret_in_the_url_of_a_host_that_does_not_resolve_stays_out_of_the_error(
    sqlite_journal: Journal, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    host = "goex-tools-test.invalid"  # `.invalid` never resolves (RFC 6761)
    monkeypatch.setenv("GOEX_SECRET_ITEMS", TOKEN)
    monkeypatch.setenv("GOEX_SECRET_ITEMS_HOSTS", host)
    caplog.set_level(logging.DEBUG)
    with goex.run(journal=sqlite_journal), pytest.raises(HttpUnreachable) as failure:
        HttpTool(timeout=5).request("GET", f"http://{host}/x?key={{{{secret:items}}}}", AUTH)
    assert str(failure.value).startswith(f"GET http://{host}/x?key={{{{secret:items}}}} failed")
    shown = "".join(traceback.format_exception(failure.value)) + repr(failure.value)
    assert TOKEN not in shown and TOKEN not in caplog.text
    assert TOKEN not in journal_text(sqlite_journal)


def test_rollback_skip_goes_past_a_step_found_not_undoable(
    api: HttpTool, service: Service, sqlite_journal: Journal
) -> None:
    """A step marked "cannot be undone" while it ran has no undo: `skip` goes past it."""
    seed(service, {"name": TOKEN}, {"name": "two"})
    before = state(service)
    with goex.run(journal=sqlite_journal) as run:
        api.request("PATCH", f"{service.url}/items/2", AUTH, {"price": 5.0})
        api.request("PATCH", f"{service.url}/items/1", AUTH, {"price": 2.0})  # state holds TOKEN
        api.request("POST", f"{service.url}/items", AUTH, {"name": "three"})
    dry = goex.rollback(run.id, journal=sqlite_journal, dry_run=True)
    assert [o.outcome for o in dry.outcomes] == [
        "would_compensate",
        "irreversible",
        "would_compensate",
    ]
    with pytest.raises(goex.RollbackFailed, match="irreversible step"):
        goex.rollback(run.id, journal=sqlite_journal)
    report = goex.rollback(run.id, journal=sqlite_journal, on_irreversible="skip")
    assert [o.outcome for o in report.outcomes] == ["irreversible", "compensated"]
    assert "holds a secret value" in report.outcomes[0].detail
    items = state(service)["items"]
    assert items[1] == before["items"][1] and items[0]["price"] == 2.0 and len(items) == 2
