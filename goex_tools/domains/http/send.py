"""Sending a call: secrets substituted for its host only, errors and bodies redacted.

Redirects are never followed, so a secret cannot be carried to a host it is not bound to.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, Field

from goex_tools.domains.http.call import HttpCall, HttpResult
from goex_tools.domains.http.errors import HttpError, HttpStatusError, HttpUnreachable
from goex_tools.domains.http.fields import get, rewrite, split
from goex_tools.errors import GoexError, TransientError
from goex_tools.redaction import redact
from goex_tools.secrets import SecretStore, cut_partial, placeholders

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 5.0  # seconds a compensation waits for a Retry-After before retrying
DEFAULT_TIMEOUT = 30.0


CONDITIONAL = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"}
)
"""Request headers that make a call conditional: they belong to the call that carries them
(a state read or an undo sends its own, never the agent's)."""


class State(BaseModel):
    """A resource as a GET saw it: absent, or present with its body (and the strong ETag
    the service gave it, which is not journaled)."""

    exists: bool
    body: Any = None
    etag: str | None = Field(default=None, exclude=True)

    def same_as(self, other: State, ignore: list[str], keep: list[str] | None = None) -> bool:
        """Equal, leaving out the values (not the presence) of the fields `ignore` names,
        except those in `keep`."""
        return self.exists == other.exists and rewrite(
            self.body, ignore, drop=False, keep=keep
        ) == rewrite(other.body, ignore, drop=False, keep=keep)

    def short(self) -> str:
        if not self.exists:
            return "absent"
        text = json.dumps(self.body, default=str)
        return text if len(text) <= 200 else text[:197] + "..."


def unconditional(headers: dict[str, str]) -> dict[str, str]:
    """`headers` without the conditional ones (If-Match, If-None-Match, ...)."""
    return {k: v for k, v in headers.items() if k.lower() not in CONDITIONAL}


_clients: dict[float, httpx.Client] = {}
_clients_lock = threading.Lock()


def client_for(timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """A process-wide client per timeout: building one (its TLS context) costs ~25 ms, and a
    shared one keeps connections alive. httpx clients are safe to share between threads."""
    with _clients_lock:
        client = _clients.get(timeout)
        if client is None or client.is_closed:
            client = _clients[timeout] = httpx.Client(timeout=timeout, follow_redirects=False)
        return client


def open_response(client: httpx.Client, call: HttpCall, store: SecretStore) -> httpx.Response:
    """Send `call` with its placeholders resolved; the response is streamed, not yet read.

    A 401 to a call whose secrets can be renewed (OAuth2 grants) renews them and sends the
    call once more (a 401 means the service did not act on it)."""
    response = _send_once(client, call, store)
    if response.status_code != 401:
        return response
    names = placeholders([call.url, call.headers, call.body])
    if not names or not store.renew(sorted(names)):
        return response
    response.close()
    return _send_once(client, call, store)


def _send_once(client: httpx.Client, call: HttpCall, store: SecretStore) -> httpx.Response:
    url = store.substitute(call.url, call.host, call.port, in_url=True)
    headers = store.substitute(call.headers, call.host, call.port)
    body = store.substitute(call.body, call.host, call.port)
    try:
        request = client.build_request(
            call.method, url, headers=headers, json=body if call.body is not None else None
        )
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        # e.g. UnicodeEncodeError for a non-ASCII header value: its repr holds the value
        error = _error(f"{call.method} {call.url} cannot be sent as written", exc)
    else:
        try:
            return client.send(request, stream=True)
        except httpx.HTTPError as exc:
            error = _error(f"{call.method} {call.url} failed", exc)
    raise error  # outside the handler: the httpx error (it holds the real URL) is not chained


def request(client: httpx.Client, call: HttpCall, store: SecretStore) -> httpx.Response:
    """Send `call` and read its whole response."""
    response = open_response(client, call, store)
    try:
        response.read()
        return response
    except httpx.HTTPError as exc:
        error = _error(f"{call.method} {call.url}: reading the response failed", exc)
    finally:
        response.close()
    raise error


def result_of(response: httpx.Response, limit: int) -> HttpResult:
    """Read at most `limit` bytes of a streamed response into a redacted HttpResult."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    error: HttpError | None = None
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                truncated = True
                break
    except httpx.HTTPError as exc:
        error = _error("reading the response failed", exc)
    finally:
        response.close()
    if error is not None:
        raise error
    encoding = response.encoding or "utf-8"
    text = redact(b"".join(chunks).decode(encoding, errors="replace"))
    if truncated:  # cut after masking, so that no secret is cut in two and half shown
        text = cut_partial(
            text.encode(encoding, errors="replace")[:limit].decode(encoding, "ignore")
        )
    body: Any = text
    if not truncated and "json" in response.headers.get("content-type", ""):
        try:  # masked again once decoded: escapes (`\/`, `\u002b`) may hide a value
            body = redact(json.loads(text))
        except ValueError:
            body = text
    headers = {k: redact(v) for k, v in response.headers.items()}
    return HttpResult(
        status_code=response.status_code, headers=headers, body=body, truncated=truncated
    )


def check_status(call: HttpCall, response: httpx.Response) -> None:
    """Raise HttpStatusError for a non-2xx answer to a fully read response."""
    if not response.is_success:
        raise status_error(call, response.status_code, response.text, retry_after(response))


def status_error(
    call: HttpCall, status: int, body: Any, wait: float | None = None
) -> HttpStatusError:
    """An HttpStatusError whose message names the call and shows the body's start, redacted."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    text = text if len(text) <= 300 else text[:297] + "..."
    return HttpStatusError(
        redact(f"{call.method} {call.url} answered {status}: {text}"), status, wait
    )


def read_state(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    store: SecretStore,
    *,
    hidden_is_absent: bool = False,
) -> State:
    """GET `url`: absent on 404/410, the JSON (or text) body on 2xx, HttpStatusError else.

    `hidden_is_absent`: 403 reads as absent too (services that hide what does not exist,
    like Kinto); only for a write guarded by `If-None-Match: *`, which fails if it exists.
    """
    call = HttpCall(method="GET", url=url, headers=unconditional(headers))
    response = request(client, call, store)
    if response.status_code in (404, 410) or (hidden_is_absent and response.status_code == 403):
        return State(exists=False)
    check_status(call, response)
    etag = response.headers.get("etag")
    strong = etag if etag and not etag.startswith("W/") else None
    try:
        return State(exists=True, body=response.json(), etag=strong)
    except ValueError:
        return State(exists=True, body=response.text, etag=strong)


def read_listing(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    store: SecretStore,
    items_field: str | None,
    limit: int,
) -> list[Any] | None:
    """Every entry of the collection at `url` (following `Next-Page` and `Link: rel=next`
    to the same host), or None when it holds more than `limit`. An absent collection is
    empty; any other failure raises HttpError."""
    entries: list[Any] = []
    next_url: str | None = url
    while next_url is not None:
        call = HttpCall(method="GET", url=next_url, headers=unconditional(headers))
        response = request(client, call, store)
        if response.status_code in (404, 410):
            return entries
        check_status(call, response)
        try:
            body = response.json()
            page = body if items_field is None else get(body, split(items_field))
        except (ValueError, KeyError):
            raise HttpError(
                f"GET {next_url}: the listing is not JSON with `{items_field}`"
            ) from None
        if not isinstance(page, list):
            raise HttpError(f"GET {next_url}: `{items_field or 'the body'}` is not a list")
        entries += page
        if len(entries) > limit:
            return None
        next_url = _next_page(response, next_url)
    return entries


def _next_page(response: httpx.Response, url: str) -> str | None:
    found = response.headers.get("next-page") or response.links.get("next", {}).get("url")
    if not found:
        return None
    target = urljoin(url, found)
    return target if urlsplit(target).netloc == urlsplit(url).netloc else None


def as_transient(exc: HttpError) -> GoexError:
    """The error a compensation raises: TransientError (retried) or the permanent one."""
    if isinstance(exc, HttpStatusError) and exc.status_code in TRANSIENT_STATUS:
        asked = min(exc.retry_after, MAX_RETRY_AFTER) if exc.retry_after else None
        return TransientError(str(exc), retry_after=asked)
    if isinstance(exc, HttpUnreachable):
        return TransientError(str(exc))
    return exc


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a `Retry-After` header asks for (a number or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to the rollback's own backoff
    if when.tzinfo is None:  # `-0000`: UTC, by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _error(what: str, exc: Exception) -> HttpError:
    """A redacted error for an httpx failure, to raise outside the handler (unchained)."""
    kind = HttpUnreachable if isinstance(exc, httpx.TransportError) else HttpError
    return kind(redact(f"{what}: {type(exc).__name__}: {exc}"))
