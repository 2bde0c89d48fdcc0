"""journal_approvals: the board where a policy's asks wait for a person (SQLite and
PostgreSQL)."""

from __future__ import annotations

import threading

from goex_tools import Journal
from goex_tools.journal_approvals import ApprovalBoard

SECRET = "hunter2-0123456789-abcdef"


def test_approval_board_is_created_once_by_racing_processes(journal_url: str) -> None:
    """Agents and the page open a fresh journal's board at once (PostgreSQL's concurrent
    CREATE TABLEs of one name collide: without a lock, all but one failed)."""
    Journal(journal_url).close()
    handles = [Journal(journal_url) for _ in range(6)]
    ready = threading.Barrier(len(handles))
    failures: list[BaseException] = []

    def open_board(journal: Journal) -> None:
        ready.wait()
        try:
            ApprovalBoard(journal)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_board, args=(j,)) for j in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for journal in handles:
        journal.close()
    assert failures == []


def test_approval_board_takes_only_the_first_answer(journal: Journal) -> None:
    board = ApprovalBoard(journal)
    ask = board.post("run-1", {"tool": "write_file", "domain": "fs"}, 60)
    assert [a.id for a in board.pending()] == [ask.id]
    assert board.answer(ask.id, False, by="reviewer one").status == "refused"
    second = board.answer(ask.id, True, by="reviewer two")
    assert (second.status, second.answered_by) == ("refused", "reviewer one")
    assert board.expire(ask.id).status == "refused"
    assert board.pending() == []


def test_approval_board_keeps_no_secret_an_ask_holds(journal: Journal) -> None:
    from goex_tools.secrets import register

    register(SECRET)
    board = ApprovalBoard(journal)
    ask = board.post("run-1", {"inputs": {"header": f"Bearer {SECRET}"}}, 60)
    with journal.reading("read the raw row") as conn:
        raw = conn.exec_driver_sql("SELECT request FROM goex_approvals").scalar()
    assert SECRET not in str(raw) and "[REDACTED]" in str(raw)
    assert board.get(ask.id).request["inputs"]["header"] == "Bearer [REDACTED]"
