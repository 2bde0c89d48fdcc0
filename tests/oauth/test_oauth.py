"""OAuth2 grants as `{{secret:NAME}}`, against a real OpenID Connect server (oidc-provider,
npm) on 127.0.0.1 and a GitHub-like service that accepts only the tokens it issued (asked by
introspection): sign-in by code + PKCE, device flow and client credentials; a token renewed
when it expires mid-run and on a 401, rotated refresh tokens stored back, a revoked grant
stopping the action with a clear error; no token in the journal, logs or results."""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import goex_tools as goex
from goex_tools import Journal, StepStatus, oauth
from goex_tools.cli import main
from goex_tools.domains.http import HttpTool
from goex_tools.domains.http.packs import github
from goex_tools.oauth import OAuthClient, OAuthSource, TokenStore
from goex_tools.secrets import SecretError, SecretStore
from tests.http.github.service import GitHubLike, Running
from tests.http.leaks import file_leaks, leaks
from tests.oauth.provider import SERVICE_SECRET, Provider, browse, start

TTL = 3  # seconds an access token lives on this provider
AUTH = {"Authorization": "Bearer {{secret:github}}"}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    yield from start(tmp_path_factory.mktemp("oidc") / "oidc.log", TTL)


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TokenStore:
    """Grants kept in a 0600 file under the test's directory (no keyring here)."""
    monkeypatch.setenv(oauth.TOKENS_ENV, str(tmp_path / "home" / "tokens.json"))
    monkeypatch.setenv("GOEX_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setattr(oauth, "EARLY", 0.5)  # renew half a second before expiry
    monkeypatch.setattr("goex_tools.secrets._default_store", None)
    return TokenStore(keyring=False)


@pytest.fixture
def hub(tmp_path: Path, provider: Provider) -> Iterator[GitHubLike]:
    service = GitHubLike(tmp_path / "hub", authorize=provider.active)
    service.git.commit("main", "README.md", b"# hello\n", "first")
    running = Running(service)
    service.url = running.url
    yield service
    running.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "journal").mkdir()
    store = Journal(f"sqlite:///{tmp_path}/journal/journal.db")
    yield store
    store.close()


def cli_client(provider: Provider, flow: str = "authorization_code") -> OAuthClient:
    return OAuthClient.discover(
        provider.issuer,
        flow=flow,
        client_id="goex-cli",
        scope="openid offline_access repo",
        hosts=["127.0.0.1"],
    )


def signed_in(provider: Provider, store: TokenStore, name: str = "github") -> oauth.Grant:
    return oauth.login(name, cli_client(provider), store=store, open_browser=browse, show=noop)


def noop(text: str) -> None:
    return None


def issue(hub: GitHubLike, title: str) -> Any:
    api = HttpTool(github.rules(hub.url), secrets=SecretStore([OAuthSource()]))
    return api.request("POST", f"{hub.url}/repos/octo/hello/issues", AUTH, {"title": title})


def test_oauth_code_with_pkce_signs_in_and_the_token_reaches_only_its_host(
    provider: Provider, tokens: TokenStore, hub: GitHubLike, journal: Journal
) -> None:
    grant = signed_in(provider, tokens)
    assert grant.tokens.refresh_token and provider.active(grant.tokens.access_token)
    path = tokens.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with goex.run("agent", journal=journal) as run:
        created = issue(hub, "Signed in")
    assert created.status_code == 201
    assert ("POST", "/repos/octo/hello/issues", True) in hub.requests
    assert all(ok for _, _, ok in hub.requests)
    other = SecretStore([OAuthSource()])
    with pytest.raises(goex.ActionRefused, match=r"bound to 127\.0\.0\.1"):
        other.value_for("github", "evil.example")
    goex.rollback(run.id, journal=journal)  # the undo is sent with the token too
    assert hub.state()["issues"][1]["state"] == "closed"


def test_oauth_sign_in_answered_with_another_state_is_refused(
    provider: Provider, tokens: TokenStore
) -> None:
    def forged(url: str) -> None:
        listener = httpx.URL(url).params["redirect_uri"]
        httpx.get(listener, params={"code": "stolen-code-123456", "state": "not-the-one"})

    with pytest.raises(SecretError, match="another state"):
        oauth.login("github", cli_client(provider), store=tokens, open_browser=forged, show=noop)
    assert tokens.names() == []


def test_oauth_device_flow_signs_in_a_machine_without_a_browser(
    provider: Provider, tokens: TokenStore, hub: GitHubLike
) -> None:
    shown: list[str] = []
    person = threading.Thread  # the person signs in elsewhere, while goex polls
    opened: list[str] = []

    def elsewhere(url: str) -> None:
        opened.append(url)
        person(target=browse, args=(url,), daemon=True).start()

    grant = oauth.login(
        "github",
        cli_client(provider, "device_code"),
        store=tokens,
        open_browser=elsewhere,
        show=shown.append,
    )
    assert "enter the code" in shown[0] and opened and "/device" in opened[0]
    assert provider.active(grant.tokens.access_token)
    assert issue(hub, "From a headless box").status_code == 201


def test_oauth_client_credentials_are_fetched_again_when_expired(
    provider: Provider, tokens: TokenStore, hub: GitHubLike
) -> None:
    client = cli_client(provider).model_copy(
        update={
            "flow": "client_credentials",
            "client_id": "goex-service",
            "client_secret": SERVICE_SECRET,
            "scope": None,
        }
    )
    first = oauth.login("github", client, store=tokens, show=noop)
    assert first.tokens.refresh_token is None
    assert issue(hub, "one").status_code == 201
    time.sleep(TTL)
    assert issue(hub, "two").status_code == 201
    renewed = tokens.load("github")
    assert renewed is not None and renewed.tokens.access_token != first.tokens.access_token
    assert all(ok for _, _, ok in hub.requests)


def test_oauth_token_expiring_mid_run_is_refreshed_and_the_rotation_kept(
    provider: Provider, tokens: TokenStore, hub: GitHubLike, journal: Journal
) -> None:
    first = signed_in(provider, tokens)
    with goex.run("agent", journal=journal) as run:
        issue(hub, "before expiry")
        time.sleep(TTL)
        issue(hub, "after expiry")
    second = tokens.load("github")
    assert second is not None
    assert second.tokens.access_token != first.tokens.access_token
    assert second.tokens.refresh_token != first.tokens.refresh_token  # rotated, stored back
    assert not provider.active(first.tokens.refresh_token or "")  # the old one is spent
    assert [ok for _, _, ok in hub.requests] == [True] * len(hub.requests)  # never a 401
    assert {s.status for s in journal.steps(run.id)} == {StepStatus.APPLIED}


def test_oauth_a_401_renews_the_token_once_and_the_call_runs_once(
    provider: Provider, tokens: TokenStore, hub: GitHubLike, journal: Journal
) -> None:
    grant = signed_in(provider, tokens)
    provider.revoke(grant.tokens.access_token)  # still "fresh" to goex; the server says no
    with goex.run("agent", journal=journal) as run:
        issue(hub, "after a 401")
    posts = [ok for method, _, ok in hub.requests if method == "POST"]
    assert posts == [False, True]  # refused once, then sent again with a renewed token
    assert len(hub.state()["issues"]) == 1
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.APPLIED


def test_oauth_a_revoked_grant_stops_the_action_with_a_clear_error(
    provider: Provider, tokens: TokenStore, hub: GitHubLike, journal: Journal
) -> None:
    grant = signed_in(provider, tokens)
    provider.revoke(grant.tokens.refresh_token or "")  # the person revokes goex's access
    provider.revoke(grant.tokens.access_token)
    with (
        goex.run("agent", journal=journal) as run,
        pytest.raises(SecretError, match=r"no longer valid .*goex auth login github"),
    ):
        issue(hub, "must not exist")
    assert hub.state()["issues"] == {}  # the action did not run
    (step,) = journal.steps(run.id)
    assert step.status is StepStatus.FAILED and "goex auth login github" in (step.error or "")
    time.sleep(TTL)  # expired as well: refused before anything is journaled or sent
    with goex.run("again", journal=journal) as again, pytest.raises(SecretError):
        issue(hub, "must not exist either")
    assert journal.steps(again.id) == [] and hub.state()["issues"] == {}


def test_oauth_tokens_never_reach_the_journal_logs_or_results(
    provider: Provider,
    tokens: TokenStore,
    hub: GitHubLike,
    journal: Journal,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = signed_in(provider, tokens)
    results = []
    with goex.run("agent", journal=journal) as run:
        results.append(issue(hub, "one"))
        time.sleep(TTL)
        results.append(issue(hub, "two"))  # refreshed: a second pair of tokens
    goex.rollback(run.id, journal=journal)
    second = tokens.load("github")
    assert second is not None
    values = [
        v for t in (first.tokens, second.tokens) for v in (t.access_token, t.refresh_token) if v
    ]
    assert file_leaks(tmp_path / "journal", *values) == []
    assert leaks(caplog.text, *values) == []
    assert leaks(json.dumps([r.model_dump() for r in results]), *values) == []
    shown = json.dumps([s.model_dump(mode="json") for s in journal.steps(run.id)])
    assert leaks(shown, *values) == []


def test_goex_auth_login_list_logout_over_a_real_server(
    provider: Provider,
    tokens: TokenStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SVC_SECRET", SERVICE_SECRET)
    login = [
        "auth", "login", "svc", "--issuer", provider.issuer, "--flow", "client",
        "--client-id", "goex-service", "--client-secret-env", "SVC_SECRET",
        "--hosts", "127.0.0.1,api.example.com",
    ]  # fmt: skip
    assert main(login) == 0
    capsys.readouterr()
    assert main(["auth", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    (entry,) = json.loads(listed)
    assert entry["name"] == "svc" and entry["flow"] == "client_credentials"
    assert entry["hosts"] == ["127.0.0.1", "api.example.com"]
    grant = tokens.load("svc")
    assert grant is not None
    assert leaks(listed, grant.tokens.access_token, SERVICE_SECRET) == []
    assert main(["auth", "logout", "svc"]) == 0
    assert tokens.names() == [] and not provider.active(grant.tokens.access_token)
    assert main(["auth", "logout", "svc"]) == 2  # nothing to log out of


def service_client(provider: Provider) -> OAuthClient:
    return OAuthClient.discover(
        provider.issuer,
        flow="client_credentials",
        client_id="goex-service",
        client_secret=SERVICE_SECRET,
        hosts=["127.0.0.1"],
    )


def test_oauth_token_file_others_may_read_is_refused(
    provider: Provider, tokens: TokenStore
) -> None:
    oauth.login("svc", service_client(provider), store=tokens, show=noop)
    tokens.path.chmod(0o644)
    with pytest.raises(SecretError, match="others may read it"):
        OAuthSource(tokens).lookup("svc")


def test_oauth_grant_kept_in_a_keyring_when_one_is_used(
    provider: Provider, tokens: TokenStore, tmp_path: Path
) -> None:
    keyring = pytest.importorskip("keyring")
    plaintext = pytest.importorskip("keyrings.alt.file")
    backend = plaintext.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        in_keyring = TokenStore(keyring=True)
        grant = oauth.login("svc", service_client(provider), store=in_keyring, show=noop)
        assert not tokens.path.exists()  # nothing in the file
        found = OAuthSource(in_keyring).lookup("svc")
        assert found is not None and found.value == grant.tokens.access_token
        assert in_keyring.names() == ["svc"] and oauth.logout("svc", store=in_keyring)
        assert in_keyring.names() == [] and not provider.active(grant.tokens.access_token)
        assert TokenStore().where.startswith("file")  # a plaintext keyring is not used unasked
    finally:
        keyring.set_keyring(previous)
