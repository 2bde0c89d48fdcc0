"""`WebApprover`: a policy's `ask` answered by a person on the review page (`goex ui`).

    policy = Policy.from_file("goex-policy.yaml", approver=WebApprover())
    with goex.run("agent", gate=policy):   # an `ask` now waits for the page
        ...

The ask is posted on the journal's approval board (`journal_approvals`) with the action,
its predicted effect and its undo, redacted; the page, in any process that opens the same
journal, shows it; the agent waits until the person approves or refuses. No answer before
the policy's `approval_timeout` (less a margin, so the answer is read before the policy
stops waiting) refuses: the ask is closed on the board first, so a late click cannot
approve what was already refused.
"""

from __future__ import annotations

import time

from goex_tools.journal import Journal, get_journal
from goex_tools.journal_approvals import ApprovalBoard
from goex_tools.model import JSONDict
from goex_tools.policy.approval import ApprovalRequest, NoAnswer

__all__ = ["WebApprover"]

DEFAULT_TIMEOUT = 600.0


class WebApprover:
    """An approver whose answer comes from the review page.

    - `journal`: where asks are posted (default: the journal of the run being decided on).
    - `timeout`: seconds to wait when the policy does not say (it normally does).
    - `poll`: seconds between looks at the board.
    """

    name = "the review page"

    def __init__(
        self,
        journal: Journal | str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        poll: float = 0.2,
    ) -> None:
        self.journal = journal
        self.timeout = timeout
        self.poll = poll

    def __call__(self, request: ApprovalRequest) -> bool:
        store = request.journal if self.journal is None else get_journal(self.journal)
        board = ApprovalBoard(store or get_journal())
        allowed = request.timeout if request.timeout is not None else self.timeout
        margin = min(1.0, allowed / 10)  # time to read the answer before the policy gives up
        start = time.monotonic()
        ask = board.post(request.run_id, shown(request), allowed - margin)
        deadline = start + allowed - margin
        while ask.status == "pending" and time.monotonic() < deadline:
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))
            ask = board.get(ask.id)
        if ask.status == "pending" or (ask.status == "expired" and not ask.answered_at):
            ask = board.expire(ask.id, why=f"no answer within {allowed - margin:g} s")
        if ask.status == "approved" and time.monotonic() >= start + allowed:
            return False  # the policy stopped waiting: refused already, whatever the page says
        if ask.status == "expired":
            raise NoAnswer(f"no answer on the review page within {allowed - margin:g} s")
        return ask.status == "approved"


def shown(request: ApprovalRequest) -> JSONDict:
    """What the page shows of an ask: the action, its predicted effect and its undo."""
    p = request.proposal
    undo = p.compensation
    return {
        "tool": p.tool,
        "domain": p.domain,
        "inputs": p.inputs,
        "predicted": p.predicted,
        "undo": p.reversibility.undo,
        "undo_description": (undo.description or undo.kind) if undo else "",
        "rule": request.rule,
        "reason": request.reason,
        "text": request.describe(),
    }
