"""LLM-proposed undo: ask a chat model for the compensating action, and trust it only once a
test-bed shows that action followed by undo gives back the starting state.

Any LangChain chat model works (anything with `invoke(messages)` returning a message whose
`content` is text); goex-tools itself never imports LangChain. The model answers with JSON
`{"undo": ...}`: a list of SQL statements for `sql`, a shell command for `fs` `run_shell`.
An undo that fails the test-bed, or an action no test-bed can try, gets no compensation, so
the action stays irreversible and the policy's `irreversible` verdict applies to it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from pydantic import BaseModel

from goex_tools.domains.sql.batch_text import statement_sql
from goex_tools.model import Compensation, Proposal
from goex_tools.policy import testbed
from goex_tools.policy.undo import SHELL_KIND, SQL_KIND, ShellUndoArgs, SqlUndoArgs
from goex_tools.redaction import redact

SYSTEM_PROMPT = (
    "You write compensating actions. Given an action an agent is about to take, reply with "
    "the action that exactly undoes it, as JSON only: "
    '{"undo": <value>, "explanation": "<one sentence>"}. '
    "For SQL, <value> is a list of SQL statements in the database's dialect. For a shell "
    "command, <value> is one shell command run in the same working directory. If no exact "
    'undo exists, reply {"undo": null, "explanation": "<why>"}.'
)


class ChatModel(Protocol):
    def invoke(self, input: Any) -> Any: ...


class UndoOutcome(BaseModel):
    """A verified compensation, or the reason there is none."""

    compensation: Compensation | None = None
    proposed: Any = None
    reason: str = ""


class UndoProposer(Protocol):
    def propose(self, proposal: Proposal) -> UndoOutcome: ...


class LLMUndoProposer:
    """Asks `model` for an undo of an action that has none, and verifies it in a test-bed."""

    def __init__(self, model: ChatModel, *, name: str | None = None) -> None:
        self.model = model
        self.name = name or type(model).__name__

    def propose(self, proposal: Proposal) -> UndoOutcome:
        if proposal.domain == "sql":
            return self._sql(proposal)
        if proposal.domain == "fs" and proposal.predicted.get("command"):
            return self._shell(proposal)
        return UndoOutcome(reason=f"no test-bed can try {proposal.domain}.{proposal.tool} actions")

    def ask(self, proposal: Proposal, action: str) -> tuple[Any, str]:
        """The model's proposed undo (or None) and its explanation."""
        request = (
            f"Domain: {proposal.domain}; tool: {proposal.tool}\n"
            f"Predicted effect: {json.dumps(proposal.predicted, default=str)}\n"
            f"Action:\n{action}"
        )
        reply = self.model.invoke([("system", SYSTEM_PROMPT), ("human", redact(request))])
        return parse_reply(_text(getattr(reply, "content", reply)))

    def _sql(self, proposal: Proposal) -> UndoOutcome:
        statements = statement_sql(proposal.inputs, proposal.predicted)
        url = testbed.real_url(proposal)
        if url is None or not statements:
            return UndoOutcome(reason="the database cannot be reached to try an undo")
        undo, why = self.ask(proposal, "\n".join(statements))
        if isinstance(undo, str):
            undo = [undo]
        if not isinstance(undo, list) or not undo or not all(isinstance(s, str) for s in undo):
            return UndoOutcome(proposed=undo, reason=f"the model proposed no SQL undo ({why})")
        trial = testbed.roundtrip(url, statements, undo)
        if not trial.restored:
            return UndoOutcome(proposed=undo, reason=f"in {trial.testbed}: {trial.detail}")
        args = SqlUndoArgs(
            model=self.name,
            verified_in=trial.testbed,
            database=str(proposal.predicted.get("database") or ""),
            database_name=testbed.database_name(proposal),
            statements=undo,
        )
        return self._accepted(SQL_KIND, args.model_dump(), undo, trial.testbed)

    def _shell(self, proposal: Proposal) -> UndoOutcome:
        from goex_tools.policy.shell import workspace_roundtrip

        p = proposal.predicted
        undo, why = self.ask(proposal, str(p["command"]))
        if not isinstance(undo, str) or not undo.strip():
            return UndoOutcome(proposed=undo, reason=f"the model proposed no undo command ({why})")
        trial = workspace_roundtrip(
            str(p["workspace"]), str(p["command"]), undo, str(p.get("sandbox") or "bwrap")
        )
        if not trial.restored:
            return UndoOutcome(proposed=undo, reason=f"in {trial.testbed}: {trial.detail}")
        args = ShellUndoArgs(
            model=self.name,
            verified_in=trial.testbed,
            workspace=str(p["workspace"]),
            command=undo,
            sandbox=str(p.get("sandbox") or "bwrap"),
        )
        return self._accepted(SHELL_KIND, args.model_dump(), undo, trial.testbed)

    def _accepted(self, kind: str, args: dict[str, Any], undo: Any, where: str) -> UndoOutcome:
        shown = "; ".join(undo) if isinstance(undo, list) else str(undo)
        return UndoOutcome(
            compensation=Compensation(
                kind=kind,
                args=args,
                description=f"LLM-proposed undo (verified in {where}): {shown}"[:300],
            ),
            proposed=undo,
            reason=f"undo proposed by {self.name}, verified in {where}",
        )


def parse_reply(text: str) -> tuple[Any, str]:
    """`(undo, explanation)` from a reply holding a JSON object, fenced or not."""
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    candidate = fenced.group(1) if fenced else text[text.find("{") : text.rfind("}") + 1]
    try:
        data = json.loads(candidate)
    except ValueError:
        return None, "the reply was not JSON"
    if not isinstance(data, dict):
        return None, "the reply was not a JSON object"
    return data.get("undo"), str(data.get("explanation") or "")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)
    return str(content)
