"""Errors of the HTTP domain, all under `HttpError`; messages are redacted (no secret value
appears in them).

* HttpError: the domain's base; raised itself when a service's answer cannot be used (a
  listing that is not JSON, an undo the service accepted that did not restore the state)
  + InvalidHttpCall: a call that cannot be sent as written; nothing was journaled or sent
  + OpenAPIError: a document that is not a usable OpenAPI 3 or Swagger 2.0 description
  + HttpUnreachable: no answer (connection failed or timed out)
  + HttpStatusError: the service answered with an error status
"""

from __future__ import annotations

from goex_tools.errors import GoexError

__all__ = ["HttpError", "HttpStatusError", "HttpUnreachable", "InvalidHttpCall", "OpenAPIError"]


class HttpError(GoexError):
    """Base of the HTTP domain's errors; raised itself for an answer goex cannot use."""


class InvalidHttpCall(HttpError):
    """A call that cannot be sent as written; nothing was journaled or sent."""


class OpenAPIError(HttpError):
    """A document that is not a usable OpenAPI 3 or Swagger 2.0 description."""


class HttpUnreachable(HttpError):
    """No answer: the connection failed or timed out (worth retrying for an undo)."""


class HttpStatusError(HttpError):
    """The service answered with an error status.

    - `status_code`: the status it answered with;
    - `retry_after`: the seconds its `Retry-After` header asked for, if any.
    """

    def __init__(self, message: str, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
