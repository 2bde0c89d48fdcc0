"""Approval hooks: a person (or a program standing in for one) approves or refuses an action.

A hook is any callable taking an `ApprovalRequest` (the proposed action, its predicted
effect, its compensation, and why it is being asked) and returning True to approve. It has
`approval_timeout` seconds to answer (600 by default); no answer refuses the action. The
policy asks it when a rule says `ask`, and, by mode, for every irreversible action
(`confirm-irreversible`) or every action (`confirm-all`); `auto` asks only where rules say so.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from goex_tools.model import Compensation, JSONDict, Proposal, Reversibility
from goex_tools.redaction import redact

if TYPE_CHECKING:
    from goex_tools.journal import Journal


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approver is asked: the proposed action, the run, and the rule that asks.

    `timeout`: the seconds the approver has (set by `ask_within`); `journal`: the run's
    journal (set by the policy), where an approver in another process can be reached.
    """

    proposal: Proposal
    run_id: str
    rule: str  # the rule or mode that asks
    reason: str
    timeout: float | None = None
    journal: Journal | None = None

    @property
    def action(self) -> JSONDict:
        return {
            "domain": self.proposal.domain,
            "tool": self.proposal.tool,
            "inputs": self.proposal.inputs,
        }

    @property
    def predicted(self) -> JSONDict:
        return self.proposal.predicted

    @property
    def compensation(self) -> Compensation | None:
        return self.proposal.compensation

    @property
    def irreversible(self) -> bool:
        return self.proposal.reversibility is Reversibility.IRREVERSIBLE

    def describe(self) -> str:
        """A redacted, human-readable account of what is asked (for prompts and logs)."""
        undo = self.compensation
        p = self.proposal
        lines = [
            f"{p.domain}.{p.tool} asks for approval ({self.rule}: {self.reason})",
            f"  inputs:    {_json(self.proposal.inputs)}",
            f"  predicted: {_json(self.predicted)}",
            f"  undo:      {p.reversibility.undo}: "
            + (undo.description or undo.kind if undo else "this action cannot be undone"),
        ]
        return str(redact("\n".join(lines)))


class Approver(Protocol):
    """Asked before an action policy marks `ask`: returns True to approve, False to refuse
    (`ConsolePrompt`, `WebApprover`, or any callable taking an `ApprovalRequest`)."""

    def __call__(self, request: ApprovalRequest) -> bool: ...


class NoAnswer(Exception):
    """The approver did not answer in time."""


def ask_within(approver: Approver, request: ApprovalRequest, timeout: float) -> bool:
    """The approver's answer (True approves), or NoAnswer after `timeout` seconds.

    The approver runs in a thread of its own; one that never returns is left behind (a
    daemon thread) and its late answer is ignored: the action was refused already.
    """
    answers: list[bool] = []
    failures: list[BaseException] = []
    request = replace(request, timeout=timeout)

    def answer() -> None:
        try:
            answers.append(approver(request) is True)
        except BaseException as exc:  # handed to the caller: a failing approver refuses
            failures.append(exc)

    context = contextvars.copy_context()  # the approver sees the run it is asked for
    thread = threading.Thread(target=context.run, args=(answer,), name="goex-approval")
    thread.daemon = True
    thread.start()
    thread.join(timeout)
    if failures:
        raise failures[0]
    if not answers:
        raise NoAnswer(f"no answer from {approver_name(approver)} within {timeout:g} s")
    return answers[0]


def approver_name(approver: Callable[..., Any]) -> str:
    """How decisions name an approver: its `name`, its function name, or its class name."""
    for label in (getattr(approver, "name", None), getattr(approver, "__name__", None)):
        if isinstance(label, str) and label:
            return label
    return type(approver).__name__


class ConsolePrompt:
    """Asks on the terminal or in a notebook cell (`input()`), showing the request in full.

    Anything but `y`/`yes` refuses; so does end of input, so an unattended run never hangs
    on an approval and never approves by accident.
    """

    name = "console"

    def __init__(
        self, ask: Callable[[str], str] = input, show: Callable[[str], Any] = print
    ) -> None:
        self._ask = ask
        self._show = show

    def __call__(self, request: ApprovalRequest) -> bool:
        self._show(request.describe())
        try:
            answer = self._ask("approve? [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")


def _json(value: Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 400 else text[:397] + "..."
