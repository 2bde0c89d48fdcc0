"""Approvers `goex mcp --approver MODULE:NAME` loads in the tests' server processes."""

from __future__ import annotations

from goex_tools.policy import ApprovalRequest


def approve_all(request: ApprovalRequest) -> bool:
    """Approves every request (stands in for a person who says yes)."""
    return True
