"""goex-tools: reversible actions for LLM agents.

Every effect passes through one path (classify -> decide -> journal pending -> execute ->
journal applied/failed) and carries a compensation that a later process can run.
"""

from goex_tools.errors import (
    ActionRefused,
    CompensationConflict,
    GoexError,
    InvalidArgument,
    InvalidCompensation,
    JournalDetached,
    JournalError,
    JournalNotFound,
    JournalUnavailable,
    NotFound,
    RollbackFailed,
    RunClosed,
    StaleTransition,
    TransientError,
)
from goex_tools.journal import Journal, get_journal
from goex_tools.model import (
    Compensation,
    Decision,
    Proposal,
    Reversibility,
    Run,
    RunStatus,
    Step,
    StepStatus,
)
from goex_tools.recovery import recover
from goex_tools.registry import EffectState, UndoContext, registry
from goex_tools.reversible import action, call_compensation, reversible
from goex_tools.rollback import RetryPolicy, RollbackReport, plan, rollback, undo_step
from goex_tools.runtime import (
    Gate,
    RunContext,
    StepHandle,
    current_run,
    execute,
    run,
)

__version__ = "0.1.0"

__all__ = [
    "ActionRefused",
    "Compensation",
    "CompensationConflict",
    "Decision",
    "EffectState",
    "Gate",
    "GoexError",
    "InvalidArgument",
    "InvalidCompensation",
    "Journal",
    "JournalDetached",
    "JournalError",
    "JournalNotFound",
    "JournalUnavailable",
    "NotFound",
    "Proposal",
    "RetryPolicy",
    "Reversibility",
    "RollbackFailed",
    "RollbackReport",
    "Run",
    "RunClosed",
    "RunContext",
    "RunStatus",
    "StaleTransition",
    "Step",
    "StepHandle",
    "StepStatus",
    "TransientError",
    "UndoContext",
    "__version__",
    "action",
    "call_compensation",
    "current_run",
    "execute",
    "get_journal",
    "plan",
    "recover",
    "registry",
    "reversible",
    "rollback",
    "run",
    "undo_step",
]
