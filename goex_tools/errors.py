"""Exceptions goex-tools raises. Every message is meant to be read by a person.

The tree (a caller's `except GoexError` catches everything goex raises on purpose):

* GoexError
  + InvalidArgument (also a ValueError): arguments that do not make sense together
  + NotFound: a run or step id the journal does not hold
  + InvalidCompensation: an undo whose kind is unknown or whose arguments do not fit it
  + ActionRefused: policy or a person refused the action; nothing happened
    - RunClosed: the run was rolled back; it accepts no new steps
    - BudgetSpent: a run budget cannot cover a step's effect; the step applied nothing
  + TransientError: worth retrying (raised by compensation handlers)
  + CompensationConflict: the world changed since the step; undoing would overwrite it
  + StaleTransition: a step was not in the status a transition expected
  + RollbackFailed: a rollback stopped; `report` says what was undone and what was not
  + JournalError: the journal cannot serve the request; no effect ran because of it
    - JournalNotFound: there is no goex journal at the URL (nothing was created)
    - JournalUnavailable: disk full, locked, I/O error, unreachable, timed out
      . JournalDetached: the journal file was deleted or replaced under the process
* Domain errors, each under GoexError: `domains.fs.errors.FsError` and its subclasses, the
  SQL and HTTP domains' errors (`InvalidSql`, `HttpError`, ...).
"""

from __future__ import annotations

from goex_tools.model import RollbackReport

__all__ = [
    "ActionRefused",
    "BudgetSpent",
    "CompensationConflict",
    "GoexError",
    "InvalidArgument",
    "InvalidCompensation",
    "JournalDetached",
    "JournalError",
    "JournalNotFound",
    "JournalUnavailable",
    "NotFound",
    "RollbackFailed",
    "RunClosed",
    "StaleTransition",
    "TransientError",
]


class GoexError(Exception):
    """Base of every goex-tools error."""


class InvalidArgument(GoexError, ValueError):
    """Arguments that do not make sense (also a ValueError, so `except ValueError` works)."""


class NotFound(GoexError):
    """A run or step id that the journal does not hold."""


class InvalidCompensation(GoexError):
    """A compensation whose kind is unknown or whose arguments do not fit the kind."""


class ActionRefused(GoexError):
    """Policy or a person refused the action before it ran; nothing happened."""


class RunClosed(ActionRefused):
    """The run was rolled back (or a rollback of it started): it accepts no new steps."""


class BudgetSpent(ActionRefused):
    """A run's budget cannot cover what a step's effect would use, found before the effect
    became permanent: the step is journaled as refused and nothing of it was applied.

    `step_id` is the refused step, `rule` the budget (`budgets.max_bytes_written`), `reason`
    the decision's reason.
    """

    def __init__(self, message: str, *, step_id: str, rule: str, reason: str) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.rule = rule
        self.reason = reason


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


class JournalError(GoexError):
    """The journal cannot serve the request. Raised before an effect, it means none ran."""


class JournalNotFound(JournalError):
    """No goex journal exists at the URL; reading it created nothing."""


class JournalUnavailable(JournalError):
    """The journal failed: disk full, locked too long, I/O error, unreachable, timed out."""


class JournalDetached(JournalUnavailable):
    """The journal file this process holds was deleted or replaced: writes would be lost."""
