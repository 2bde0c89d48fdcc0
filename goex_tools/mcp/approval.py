"""A policy's `ask` over MCP: the person at the client answers, through elicitation.

The gate a server journals with picks, per tool call, the policy to decide with: where the
client offers elicitation, a copy of the policy whose approver asks the client's user (a form
with one yes/no field, showing the redacted request); elsewhere the policy as configured,
with its own approver if it has one, else an `ask` refuses ("no approver is set"). Both share
the policy's budgets.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from goex_tools.errors import GoexError
from goex_tools.model import Decision, JSONDict, Proposal, Step

if TYPE_CHECKING:
    from goex_tools.policy import ApprovalRequest, Policy
    from goex_tools.runtime import RunContext

__all__ = ["Asker", "ElicitingApprover", "SessionGate", "asking"]

Ask = Callable[[str], Coroutine[Any, Any, bool]]
"""Shows a message to the client's user and returns True if they approve."""


@dataclass(frozen=True)
class Asker:
    """How to ask the client's user during the current tool call, from any thread."""

    ask: Ask
    loop: asyncio.AbstractEventLoop


_asker: ContextVar[Asker | None] = ContextVar("goex_mcp_asker", default=None)


@contextmanager
def asking(asker: Asker | None) -> Iterator[None]:
    """Inside the block (and threads started with its context), an `ask` goes to `asker`."""
    token = _asker.set(asker)
    try:
        yield
    finally:
        _asker.reset(token)


class ElicitingApprover:
    """An approver that asks the MCP client's user; no answer within `timeout` refuses."""

    name = "the MCP client's user (elicitation)"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(self, request: ApprovalRequest) -> bool:
        asker = _asker.get()
        if asker is None:
            raise GoexError("no MCP tool call is under way to ask in")
        future = asyncio.run_coroutine_threadsafe(asker.ask(request.describe()), asker.loop)
        try:
            return future.result(self.timeout) is True
        except concurrent.futures.TimeoutError:
            future.cancel()  # withdraws the question from the client
            raise


class SessionGate:
    """The gate of an MCP server: `policy`, asking through elicitation where the client can."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.eliciting = copy.copy(policy)  # shares the config and the budgets' ledgers
        self.eliciting.approver = ElicitingApprover(policy.approval_timeout)

    def decide(self, proposal: Proposal, run: RunContext) -> Decision:
        chosen = self.eliciting if _asker.get() is not None else self.policy
        return chosen.decide(proposal, run)

    def charge(
        self, step: Step, effect: JSONDict, run: RunContext, *, charged: JSONDict, strict: bool
    ) -> JSONDict:
        return self.policy.charge(step, effect, run, charged=charged, strict=strict)
