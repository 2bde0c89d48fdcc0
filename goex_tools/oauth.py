"""OAuth2 grants as symbolic secrets: `{{secret:github}}` is the grant's current access token.

    goex auth login github --issuer https://auth.example --client-id ID --hosts api.github.com

A grant is signed in once (`login`): authorization code with PKCE (a redirect listener on
127.0.0.1, as CLIs do), device authorization (for machines without a browser), or client
credentials. Its record (the client registration and the tokens) lives in the OS keyring
when one works, else in a file only its owner may read (`GOEX_TOKENS_FILE`, default
`.goex/tokens.json`, mode 0600). The model still writes the placeholder; when a request
is sent the token comes from here, bound to the grant's hosts like any secret:
- an access token about to expire is refreshed first (client credentials: fetched again);
- a 401 answer renews it once and the call is sent again (`SecretStore.renew`);
- a rotated refresh token is stored back before the new access token is used;
- a grant the server no longer honours (revoked, expired) raises SecretError naming
  `goex auth login NAME`, before anything is sent.
Every token and client secret is registered with the redactor the moment it is read, so no
journal row, log record, result or exception shows it.

The token requests go through Authlib's httpx client: a well-kept implementation of RFC
6749 (client authentication, error responses), PKCE (RFC 7636) and the token refresh with
rotation, rather than code of our own; device authorization (RFC 8628) is its token
request with the device grant type.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import json
import os
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from pydantic import BaseModel, Field

from goex_tools.redaction import redact
from goex_tools.secrets import (
    KEYRING_SERVICE,
    Secret,
    SecretError,
    _keyring_backend,
    read_owner_only,
    register,
)

__all__ = [
    "DEFAULT_TOKENS",
    "TOKENS_ENV",
    "Flow",
    "Grant",
    "OAuthClient",
    "OAuthSource",
    "TokenStore",
    "Tokens",
    "grants",
    "login",
    "logout",
]

Flow = Literal["authorization_code", "device_code", "client_credentials"]
TOKENS_ENV = "GOEX_TOKENS_FILE"
DEFAULT_TOKENS = Path(".goex") / "tokens.json"
EARLY = 30.0  # seconds before its expiry an access token is renewed
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 30.0


class OAuthClient(BaseModel):
    """Where a grant's tokens come from and who asks: a client registration."""

    flow: Flow = "authorization_code"
    client_id: str
    client_secret: str | None = None
    token_endpoint: str
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scope: str | None = None
    hosts: list[str]

    @classmethod
    def discover(cls, issuer: str, **fields: Any) -> OAuthClient:
        """The endpoints from the issuer's metadata (OpenID Connect discovery, else RFC 8414),
        plus `fields` (client_id, hosts, ...)."""
        base = issuer.rstrip("/")
        for path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            try:
                answer = httpx.get(base + path, timeout=TIMEOUT)
            except httpx.HTTPError as exc:
                raise SecretError(f"cannot reach the OAuth2 issuer {issuer}: {exc}") from None
            if answer.is_success:
                meta = answer.json()
                found = {
                    key: meta.get(key)
                    for key in (
                        "token_endpoint",
                        "authorization_endpoint",
                        "device_authorization_endpoint",
                        "revocation_endpoint",
                    )
                    if meta.get(key)
                }
                return cls.model_validate({**found, **fields})
        raise SecretError(f"{issuer} publishes no OAuth2 metadata (.well-known)")


class Tokens(BaseModel):
    """An OAuth2 grant's tokens as the token endpoint gave them (`expires_at` in seconds since
    the epoch); `fresh()` says whether the access token can still be sent."""

    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    expires_at: float | None = None  # seconds since the epoch
    scope: str | None = None

    def fresh(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return True
        return (now or time.time()) < self.expires_at - EARLY


class Grant(BaseModel):
    """What a signed-in secret is: its client and its current tokens."""

    name: str
    client: OAuthClient
    tokens: Tokens
    updated_at: float = Field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        """What `goex auth list` shows: never a token or the client secret."""
        return {
            "name": self.name,
            "flow": self.client.flow,
            "hosts": self.client.hosts,
            "client_id": self.client.client_id,
            "scope": self.tokens.scope or self.client.scope,
            "expires_at": self.tokens.expires_at,
            "refreshable": self.tokens.refresh_token is not None
            or self.client.flow == "client_credentials",
        }

    def register(self) -> None:
        """Mask every secret value this grant holds, wherever it may show up."""
        for value in (
            self.tokens.access_token,
            self.tokens.refresh_token,
            self.client.client_secret,
        ):
            if value:
                register(value)


# where grants are kept


class TokenStore:
    """Grants in the OS keyring when a real backend answers, else in a 0600 JSON file.

    `keyring=True` uses whatever keyring backend answers; False never uses one."""

    def __init__(self, path: str | Path | None = None, *, keyring: bool | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self._keyring = keyring

    @property
    def path(self) -> Path:
        return self._path or Path(os.environ.get(TOKENS_ENV) or DEFAULT_TOKENS)

    @property
    def where(self) -> str:
        return "OS keyring" if self._backend() is not None else f"file {self.path}"

    def _backend(self) -> Any:
        """The keyring, unless told not to use one or it is a plain file in disguise
        (`keyrings.alt`: plaintext or a weakly encrypted file), which is no safer than ours."""
        if self._keyring is False:
            return None
        backend = _keyring_backend()
        weak = type(backend).__module__.startswith("keyrings.alt")
        return backend if self._keyring or not weak else None

    def load(self, name: str) -> Grant | None:
        backend = self._backend()
        if backend is not None:
            raw = backend.get_password(KEYRING_SERVICE, f"{name}.oauth")
            grant = Grant.model_validate_json(raw) if raw else None
        else:
            found = self._read().get(name)
            grant = Grant.model_validate(found) if found is not None else None
        if grant is not None:
            grant.register()
        return grant

    def save(self, grant: Grant) -> None:
        grant.register()
        backend = self._backend()
        if backend is not None:
            backend.set_password(KEYRING_SERVICE, f"{grant.name}.oauth", grant.model_dump_json())
            names = set(self.names()) | {grant.name}
            backend.set_password(KEYRING_SERVICE, "oauth.names", ",".join(sorted(names)))
            return
        with self.locked():
            data = self._read()
            data[grant.name] = grant.model_dump(mode="json")
            self._write(data)

    def delete(self, name: str) -> bool:
        backend = self._backend()
        if backend is not None:
            if backend.get_password(KEYRING_SERVICE, f"{name}.oauth") is None:
                return False
            backend.delete_password(KEYRING_SERVICE, f"{name}.oauth")
            rest = sorted(set(self.names()) - {name})
            backend.set_password(KEYRING_SERVICE, "oauth.names", ",".join(rest))
            return True
        with self.locked():
            data = self._read()
            if data.pop(name, None) is None:
                return False
            self._write(data)
            return True

    def names(self) -> list[str]:
        backend = self._backend()
        if backend is not None:
            listed = backend.get_password(KEYRING_SERVICE, "oauth.names") or ""
            return [n for n in listed.split(",") if n]
        return sorted(self._read())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a grant is refreshed or written: one process renews it at a time
        (re-entrant within a thread: a refresh saves under the lock it holds)."""
        with _process_lock:
            if getattr(_held, "depth", 0):
                _held.depth += 1
                try:
                    yield
                finally:
                    _held.depth -= 1
                return
            path = self.path
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _held.depth = 1
                yield
            finally:
                _held.depth = 0
                os.close(fd)

    def _read(self) -> dict[str, Any]:
        path = self.path
        if not path.exists():
            return {}
        try:
            data = json.loads(read_owner_only(path, "OAuth2 tokens") or "{}")
        except ValueError as exc:
            raise SecretError(f"{path} is not valid JSON: {exc}") from None
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        path = self.path
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(partial, path)


_process_lock = threading.RLock()
_held = threading.local()


# signing in


def login(
    name: str,
    client: OAuthClient,
    *,
    store: TokenStore | None = None,
    open_browser: Callable[[str], Any] = webbrowser.open,
    show: Callable[[str], Any] = print,
    port: int = 0,
    timeout: float = 300.0,
) -> Grant:
    """Sign in with `client`'s flow and keep the grant under `name`.

    - authorization_code: PKCE (S256) and a redirect listener on 127.0.0.1:`port` (0: any);
      `open_browser(url)` shows the user where to sign in;
    - device_code: `show(text)` tells the user where to go and which code to enter, then
      the token endpoint is polled as the server asks;
    - client_credentials: no user; the client secret is the credential.

    Raises SecretError (redacted) if the sign-in fails or times out.
    """
    flows = {
        "authorization_code": _authorization_code,
        "device_code": _device_code,
        "client_credentials": _client_credentials,
    }
    if client.client_secret:
        register(client.client_secret)
    try:
        token = flows[client.flow](client, _Person(open_browser, show, port, timeout))
    except OAuthError as exc:
        raise SecretError(redact(f"signing in {name!r} failed: {_why(exc)}")) from None
    except httpx.HTTPError as exc:
        raise SecretError(redact(f"signing in {name!r} failed: {exc}")) from None
    grant = Grant(name=name, client=client, tokens=_tokens(token))
    (store or TokenStore()).save(grant)
    return grant


def logout(name: str, *, store: TokenStore | None = None) -> bool:
    """Forget the grant (and revoke its refresh token where the server says how)."""
    store = store or TokenStore()
    grant = store.load(name)
    if grant is None:
        return False
    revoke = grant.client.revocation_endpoint
    held = grant.tokens.refresh_token or grant.tokens.access_token
    if revoke:
        with _session(grant.client) as session, contextlib.suppress(httpx.HTTPError):
            session.revoke_token(revoke, token=held)
    return store.delete(name)


@dataclass(frozen=True)
class _Person:
    """How a sign-in reaches the person: where to send them, what to tell them, where the
    redirect comes back, and how long to wait."""

    open_browser: Callable[[str], Any]
    show: Callable[[str], Any]
    port: int
    timeout: float


def _session(client: OAuthClient, *, asks: bool = True, **extra: Any) -> OAuth2Client:
    """Authlib's client for `client`; `asks=False`: a refresh, which asks for no scope (the
    grant's own stays; asking again for what was not granted is refused)."""
    method = "client_secret_basic" if client.client_secret else "none"
    return OAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        scope=client.scope if asks else None,
        token_endpoint_auth_method=method,
        code_challenge_method="S256",  # PKCE, whenever a code verifier is given
        timeout=TIMEOUT,
        follow_redirects=False,
        **extra,
    )


def _authorization_code(client: OAuthClient, person: _Person) -> dict[str, Any]:
    if client.authorization_endpoint is None:
        raise SecretError("the client has no authorization endpoint")
    with _Listener(person.port) as listener:
        verifier = secrets.token_urlsafe(64)
        register(verifier)
        with _session(client, redirect_uri=listener.redirect_uri) as session:
            url, state = session.create_authorization_url(
                client.authorization_endpoint, code_verifier=verifier
            )
            person.show(f"sign in at {url}")
            person.open_browser(url)
            answer = listener.wait(person.timeout)
            if answer.get("state") != state:
                raise SecretError("the sign-in answered with another state: refused")
            if "error" in answer:
                why = answer.get("error_description") or ""
                raise SecretError(redact(f"the sign-in was refused: {answer['error']} {why}"))
            register(answer["code"])
            token: dict[str, Any] = session.fetch_token(
                client.token_endpoint, code=answer["code"], code_verifier=verifier
            )
            return token


def _device_code(client: OAuthClient, person: _Person) -> dict[str, Any]:
    if client.device_authorization_endpoint is None:
        raise SecretError("the client has no device authorization endpoint")
    with _session(client) as session:
        scope = {"scope": client.scope} if client.scope else {}
        basic = {"auth": (client.client_id, client.client_secret)} if client.client_secret else {}
        asked = session.request(  # no token yet; a confidential client authenticates by Basic
            "POST",
            client.device_authorization_endpoint,
            data={"client_id": client.client_id, **scope},
            headers={"Accept": "application/json"},  # GitHub answers a form otherwise
            withhold_token=True,
            **basic,
        )
        asked.raise_for_status()
        device = asked.json()
        register(device["device_code"])
        where = device.get("verification_uri_complete") or device["verification_uri"]
        person.show(f"open {device['verification_uri']} and enter the code {device['user_code']}")
        person.open_browser(where)
        interval = float(device.get("interval", 5))
        deadline = time.monotonic() + min(
            person.timeout, float(device.get("expires_in", person.timeout))
        )
        while True:
            try:
                token: dict[str, Any] = session.fetch_token(
                    client.token_endpoint,
                    grant_type=DEVICE_GRANT,
                    device_code=device["device_code"],
                )
                return token
            except OAuthError as exc:
                if exc.error == "slow_down":
                    interval += 5
                elif exc.error != "authorization_pending":
                    raise
            if time.monotonic() + interval > deadline:
                raise SecretError("the device sign-in was not completed in time")
            time.sleep(interval)


def _client_credentials(client: OAuthClient, person: _Person | None = None) -> dict[str, Any]:
    if not client.client_secret:
        raise SecretError("client credentials need a client secret")
    with _session(client) as session:
        token: dict[str, Any] = session.fetch_token(
            client.token_endpoint, grant_type="client_credentials"
        )
        return token


class _Listener:
    """The redirect target of the authorization code flow: one answer on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        answers: list[dict[str, str]] = []
        arrived = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                answers.append({k: v[0] for k, v in parse_qs(parts.query).items()})
                arrived.set()
                body = b"Signed in; you can close this page.\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # the query holds the code
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.answers, self.arrived = answers, arrived
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        if not self.arrived.wait(timeout):
            raise SecretError(f"no sign-in answer within {timeout:g} s")
        return self.answers[0]


# using a grant


class OAuthSource:
    """A secret source for signed-in grants: the current access token, renewed as needed."""

    name = "oauth"

    def __init__(self, store: TokenStore | None = None) -> None:
        self.store = store or TokenStore()

    def lookup(self, name: str) -> Secret | None:
        grant = self.store.load(name)
        if grant is None:
            return None
        if not grant.tokens.fresh():
            grant = self._renewed(name, seen=grant.tokens.access_token)
        return Secret(
            name,
            grant.tokens.access_token,
            tuple(grant.client.hosts),
            f"OAuth2 grant ({grant.client.flow}, {self.store.where})",
        )

    def renew(self, name: str, rejected: str | None = None) -> bool:
        """Renew `name`'s access token (the server refused `rejected`); False if unknown."""
        if self.store.load(name) is None:
            return False
        self._renewed(name, seen=rejected)
        return True

    def _renewed(self, name: str, seen: str | None) -> Grant:
        with self.store.locked():
            grant = self.store.load(name)
            if grant is None:
                raise SecretError(f"the OAuth2 grant {name!r} was removed")
            if grant.tokens.access_token != seen and grant.tokens.fresh():
                return grant  # another thread or process renewed it meanwhile
            try:
                token = _renew(grant)
            except OAuthError as exc:
                raise SecretError(
                    redact(
                        f"the OAuth2 grant {name!r} is no longer valid ({_why(exc)}); "
                        f"nothing was sent: sign in again with `goex auth login {name}`"
                    )
                ) from None
            except httpx.HTTPError as exc:
                raise SecretError(
                    redact(f"renewing the OAuth2 grant {name!r} failed: {exc}; nothing was sent")
                ) from None
            renewed = _tokens(token, keep=grant.tokens)
            grant = grant.model_copy(update={"tokens": renewed, "updated_at": time.time()})
            self.store.save(grant)  # a rotated refresh token is kept before it is used
            return grant


def _renew(grant: Grant) -> dict[str, Any]:
    client = grant.client
    if client.flow == "client_credentials":
        return _client_credentials(client)
    if grant.tokens.refresh_token is None:
        raise SecretError(
            f"the access token of {grant.name!r} expired and the server gave no refresh "
            f"token: sign in again with `goex auth login {grant.name}`"
        )
    with _session(client, asks=False) as session:
        token: dict[str, Any] = session.refresh_token(
            client.token_endpoint, refresh_token=grant.tokens.refresh_token
        )
        return token


def _tokens(token: dict[str, Any], keep: Tokens | None = None) -> Tokens:
    expires_at = token.get("expires_at")
    if expires_at is None and token.get("expires_in") is not None:
        expires_at = time.time() + float(token["expires_in"])
    refresh = token.get("refresh_token") or (keep.refresh_token if keep else None)
    tokens = Tokens(
        access_token=token["access_token"],
        token_type=str(token.get("token_type") or "Bearer"),
        refresh_token=refresh,
        expires_at=float(expires_at) if expires_at is not None else None,
        scope=token.get("scope") or (keep.scope if keep else None),
    )
    for value in (tokens.access_token, tokens.refresh_token):
        if value:
            register(value)
    return tokens


def _why(exc: OAuthError) -> str:
    return f"{exc.error}: {exc.description}" if exc.description else str(exc.error)


def grants(store: TokenStore | None = None) -> list[dict[str, Any]]:
    """Every signed-in grant, as `Grant.summary` shows it."""
    store = store or TokenStore()
    return [g.summary() for name in store.names() if (g := store.load(name)) is not None]
