"""Approval hooks: a person (or a program standing in for one) approves or refuses an action.

A hook is any callable taking an `ApprovalRequest` (the proposed action, its predicted
effect, its compensation, and why it is being asked) and returning True to approve. The
policy asks it when a rule says `ask`, and, by mode, for every irreversible action
(`confirm-irreversible`) or every action (`confirm-all`); `auto` asks only where rules say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from goex_tools.model import Compensation, JSONDict, Proposal, Reversibility
from goex_tools.redaction import redact


@dataclass(frozen=True)
class ApprovalRequest:
    proposal: Proposal
    run_id: str
    rule: str  # the rule or mode that asks
    reason: str

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
            "  undo:      "
            + (undo.description or undo.kind if undo else "none: this action cannot be undone"),
        ]
        return str(redact("\n".join(lines)))


class Approver(Protocol):
    def __call__(self, request: ApprovalRequest) -> bool: ...


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
