"""Exceptions goex-tools raises. Every message is meant to be read by a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from goex_tools.rollback import RollbackReport


class GoexError(Exception):
    """Base of every goex-tools error."""


class NotFound(GoexError):
    """A run or step id that the journal does not hold."""


class InvalidCompensation(GoexError):
    """A compensation whose kind is unknown or whose arguments do not fit the kind."""


class ActionRefused(GoexError):
    """Policy or a person refused the action before it ran; nothing happened."""


class TransientError(GoexError):
    """A failure worth retrying (timeouts, 5xx, 429). Compensation handlers raise it.

    `retry_after` is the wait the other side asked for (e.g. HTTP `Retry-After`), in seconds;
    a rollback waits at least that long (up to `RetryPolicy.max_retry_after`) before retrying.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CompensationConflict(GoexError):
    """The world changed since the step ran; undoing it would overwrite someone else's change."""


class StaleTransition(GoexError):
    """A step was not in the state a transition expected (another process moved it first)."""


class RollbackFailed(GoexError):
    """A rollback stopped before finishing. `report` says what was undone and what was not."""

    def __init__(self, message: str, report: RollbackReport) -> None:
        super().__init__(message)
        self.report = report
