"""Damage confinement: a declarative policy, approval hooks, run budgets, `goex doctor`,
and LLM-proposed undos verified in a test-bed before they are trusted.

    policy = Policy.from_file(
        "goex-policy.yaml", approver=ConsolePrompt(), undo_proposer=LLMUndoProposer(chat_model)
    )
    with goex.run("agent", gate=policy):
        ...
"""

from goex_tools.policy.approval import ApprovalRequest, Approver, ConsolePrompt
from goex_tools.policy.budget import Usage, usage
from goex_tools.policy.config import (
    Budgets,
    FsPolicy,
    FsRule,
    HttpPolicy,
    HttpRule,
    PolicyConfig,
    SqlPolicy,
    SqlRule,
)
from goex_tools.policy.doctor import DoctorReport, doctor
from goex_tools.policy.gate import Policy
from goex_tools.policy.llm_undo import LLMUndoProposer
from goex_tools.policy.source import PolicyError, PolicySource, load_policy, parse_policy
from goex_tools.policy.web_approver import WebApprover

__all__ = [
    "ApprovalRequest",
    "Approver",
    "Budgets",
    "ConsolePrompt",
    "DoctorReport",
    "FsPolicy",
    "FsRule",
    "HttpPolicy",
    "HttpRule",
    "LLMUndoProposer",
    "Policy",
    "PolicyConfig",
    "PolicyError",
    "PolicySource",
    "SqlPolicy",
    "SqlRule",
    "Usage",
    "WebApprover",
    "doctor",
    "load_policy",
    "parse_policy",
    "usage",
]
