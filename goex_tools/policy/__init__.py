"""Damage confinement: a declarative policy, approval hooks, run budgets, `goex doctor`,
and LLM-proposed undos verified in a test-bed before they are trusted.

    policy = Policy.from_file("goex-policy.yaml", approver=ConsolePrompt())
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
from goex_tools.policy.gate import Policy
from goex_tools.policy.source import PolicyError, PolicySource, load_policy, parse_policy

__all__ = [
    "ApprovalRequest",
    "Approver",
    "Budgets",
    "ConsolePrompt",
    "FsPolicy",
    "FsRule",
    "HttpPolicy",
    "HttpRule",
    "Policy",
    "PolicyConfig",
    "PolicyError",
    "PolicySource",
    "SqlPolicy",
    "SqlRule",
    "Usage",
    "load_policy",
    "parse_policy",
    "usage",
]
