"""Approvers `goex mcp --approver MODULE:NAME` loads in the tests' server processes."""

from __future__ import annotations

import contextlib

from goex_tools.policy import ApprovalRequest


def approve_all(request: ApprovalRequest) -> bool:
    """Approves every request (stands in for a person who says yes)."""
    return True


def approve_loudly(request: ApprovalRequest) -> bool:
    """Prints to stdout and reads stdin first, as careless code does: over stdio, neither
    may touch the protocol's streams."""
    print("approver: approving", request.describe())
    with contextlib.suppress(EOFError):
        input("approve? ")
    return True
