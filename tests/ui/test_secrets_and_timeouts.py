"""What the review page must never do: show a secret, or let a late click approve what the
policy already refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import goex_tools as goex
from goex_tools.domains.fs import Workspace
from goex_tools.errors import ActionRefused
from goex_tools.journal_approvals import ApprovalBoard
from goex_tools.policy import Policy, PolicyConfig, WebApprover
from tests.ui.conftest import review_page
from tests.ui.test_guard import logged_in

SECRET = "hunter2-0123456789-abcdef"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[goex.Journal]:
    store = goex.Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    yield store
    store.close()


def test_ui_masks_a_secret_that_reached_a_file_or_the_journal(
    tmp_path: Path, journal: goex.Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's process never looked the secret up (nothing masked it there); the page's
    process knows it from the environment, as the agents' machine does."""
    root = tmp_path / "workspace"
    root.mkdir()
    workspace = Workspace(root, store=tmp_path / "store", sandbox="none")
    with goex.run(f"leaks {SECRET}", journal=journal) as ctx:
        workspace.write_file("leak.txt", f"token = {SECRET}\n")
    assert SECRET in str(journal.steps(ctx.id)[0].inputs)  # the worst case: journaled raw
    monkeypatch.setenv("GOEX_SECRET_LEAKED", SECRET)
    monkeypatch.setenv("GOEX_SECRET_LEAKED_HOSTS", "api.example.com")
    with review_page(journal.url) as page:
        client, _ = logged_in(page)
        for path in ("/", f"/runs/{ctx.id}", f"/fragments/runs/{ctx.id}", "/?q=leak"):
            shown = client.get(path).text
            assert SECRET not in shown and SECRET[:12] not in shown, path
        run_page = client.get(f"/runs/{ctx.id}").text
        assert "+token = [REDACTED]" in run_page  # the diff, masked
        assert "leaks [REDACTED]" in run_page  # the run's name too


def test_web_approver_refuses_when_nobody_answers_and_a_late_click_changes_nothing(
    tmp_path: Path, journal: goex.Journal
) -> None:
    root = tmp_path / "workspace"
    root.mkdir()
    workspace = Workspace(root, store=tmp_path / "store", sandbox="none")
    config = PolicyConfig.model_validate(
        {"default": "ask", "approval_timeout": 2, "fs": {"default": "ask"}}
    )
    policy = Policy(config, approver=WebApprover(poll=0.05))
    started = time.monotonic()
    with goex.run("unanswered", journal=journal, gate=policy) as ctx, pytest.raises(ActionRefused):
        workspace.write_file("never.txt", "x\n")
    assert 1.5 < time.monotonic() - started < 2.5
    assert not (root / "never.txt").exists()
    (step,) = journal.steps(ctx.id)
    assert step.status.value == "refused" and "no answer on the review page" in (step.error or "")

    board = ApprovalBoard(journal)
    (ask,) = board.recent()
    assert ask.status == "expired" and ask.answered_at is not None
    assert board.answer(ask.id, True, by="a late reviewer").status == "expired"
    with review_page(journal.url) as page:
        client, csrf = logged_in(page)
        late = client.post(f"/approvals/{ask.id}/approve", headers={"X-Goex-CSRF": csrf})
        assert late.status_code == 200 and "too late: this request is expired" in late.text
    assert board.get(ask.id).status == "expired"


def test_ui_answers_404_for_an_unknown_ask_and_changes_nothing(journal: goex.Journal) -> None:
    ApprovalBoard(journal)
    with goex.run("r", journal=journal):
        pass
    with review_page(journal.url) as page:
        client, csrf = logged_in(page)
        answer = client.post("/approvals/nope/approve", headers={"X-Goex-CSRF": csrf})
        assert answer.status_code == 404
        assert httpx.get(page.base + "/approvals/nope/approve", timeout=5).status_code == 403


def test_ui_shows_markup_from_an_agent_as_text(tmp_path: Path, journal: goex.Journal) -> None:
    """A run name, a file and a tool's inputs are the agent's words: shown, never run."""
    root = tmp_path / "workspace"
    root.mkdir()
    workspace = Workspace(root, store=tmp_path / "store", sandbox="none")
    attack = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    with goex.run(attack, journal=journal) as ctx:
        workspace.write_file("page.html", f"{attack}\n")
    with review_page(journal.url) as page:
        client, _ = logged_in(page)
        for path in ("/", f"/runs/{ctx.id}"):
            shown = client.get(path).text
            assert "<script>alert" not in shown and "<img src=x" not in shown, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown, path
