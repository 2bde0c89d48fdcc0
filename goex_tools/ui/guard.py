"""Who may use the review page: whoever holds the token `goex ui` printed, from this machine.

As Jupyter does: the printed URL carries a random token; the first request with it gets a
session cookie (HttpOnly, SameSite=Strict) and is redirected to the same page without the
token, so it stays out of history and Referer headers. Every request needs the cookie or
the token (`?token=`, or `Authorization: token ...`), else 403. Requests whose Host is not
the address the page is served on are refused (DNS rebinding). A request that changes
anything must be a POST carrying the page's CSRF token in `X-Goex-CSRF` (htmx sends it on
every request), from the page's own origin. Pages may not be framed (no clickjacking of
the approve button) and load scripts only from the server itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSRF_HEADER", "Guard", "Keys"]

CSRF_HEADER = "x-goex-csrf"
COOKIE = "goex_ui"
SAFE_METHODS = ("GET", "HEAD")
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class Keys:
    """The page's secrets: the token people are given, the session cookie's value, and the
    CSRF token pages carry (derived from the session, so it is useless without it)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.session = secrets.token_urlsafe(32)
        self.csrf = hmac.new(self.session.encode(), b"csrf", hashlib.sha256).hexdigest()

    def is_token(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def is_session(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.session.encode())

    def is_csrf(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())


class Guard:
    """ASGI middleware enforcing the rules above in front of the whole app."""

    def __init__(self, app: ASGIApp, keys: Keys, hosts: Iterable[str]) -> None:
        self.app = app
        self.keys = keys
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query and scope["method"] in SAFE_METHODS:  # log in, drop the token
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            redirect = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
            redirect.set_cookie(
                COOKIE, self.keys.session, httponly=True, samesite="strict", path="/"
            )
            await _secured(redirect)(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                known = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in known:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if headers.get("host", "").lower() not in self.hosts:
            return _refused("this page answers only at the address goex ui printed")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        authorization = headers.get("authorization", "")
        given = authorization[6:].strip() if authorization.lower().startswith("token ") else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no session
            cookie = SimpleCookie()
        session = cookie[COOKIE].value if COOKIE in cookie else None
        if not (
            self.keys.is_session(session)
            or self.keys.is_token(query.get("token"))
            or self.keys.is_token(given)
        ):
            return _refused(
                "this page needs the token that `goex ui` printed: open the URL it printed "
                "(http://127.0.0.1:PORT/?token=...)"
            )
        if scope["method"] not in SAFE_METHODS:
            if not self.keys.is_csrf(headers.get(CSRF_HEADER)):
                return _refused("a change needs the page's CSRF token (reload the page)")
            origin = headers.get("origin")
            if origin is not None and origin.lower().split("://", 1)[-1] not in self.hosts:
                return _refused("a change must come from the review page itself")
            if headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
                return _refused("a change must come from the review page itself")
        return None


def _refused(why: str) -> Response:
    return _secured(PlainTextResponse(f"403 forbidden: {why}\n", status_code=403))


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
