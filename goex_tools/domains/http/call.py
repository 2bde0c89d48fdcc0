"""A REST call as the agent wrote it (placeholders unresolved), and what the model gets back."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from goex_tools.secrets import PLACEHOLDER

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
METHODS = SAFE_METHODS | {"POST", "PUT", "PATCH", "DELETE"}
DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpCall(BaseModel):
    """One request: method, absolute URL, headers and JSON body, secrets as placeholders."""

    model_config = ConfigDict(frozen=True)

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None

    @field_validator("body")
    @classmethod
    def _json_data(cls, body: Any) -> Any:
        problem = not_json(body)
        if problem is not None:
            raise ValueError(problem)
        return body

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        method = method.strip().upper()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(sorted(METHODS))}")
        return method

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http:// or https:// URL")
        if PLACEHOLDER.search(parts.netloc):
            raise ValueError("a secret placeholder cannot stand in the host part of the url")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
        except ValueError as exc:
            raise ValueError(f"url has a bad port: {exc}") from None
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The port the call goes to: the URL's, or its scheme's default (a secret bound to
        `host:443` may go to `https://host/`)."""
        parts = urlsplit(self.url)
        return parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    def inputs(self) -> dict[str, Any]:
        """The call as journaled: what the agent asked, secrets still placeholders."""
        return {"method": self.method, "url": self.url, "headers": self.headers, "json": self.body}


def not_json(data: Any, where: str = "json") -> str | None:
    """What in `data` is not JSON data (named by its path, `json.a[1].b`), or None."""
    if data is None or isinstance(data, (str, bool, int)):
        return None
    if isinstance(data, float):
        return None if math.isfinite(data) else f"{where}: {data!r} is not a JSON number"
    if isinstance(data, (list, tuple)):
        for index, item in enumerate(data):
            problem = not_json(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                return f"{where}: the key {key!r} is a {type(key).__name__}, not a string"
            problem = not_json(value, f"{where}.{key}")
            if problem is not None:
                return problem
        return None
    return f"{where}: {type(data).__name__} is not JSON data"


class HttpResult(BaseModel):
    """What the model sees: status, headers and a size-limited body, secrets masked."""

    status_code: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    truncated: bool = False
