"""The review page in a real browser (Debian's headless chromium): a run made by a LangChain
agent loop over files, an SQLite database and a REST service is reviewed and undone from the
page, and an agent's asks are approved and refused while it waits.

Set GOEX_UI_SCREENSHOTS=docs/ui to refresh the README's screenshots from these tests."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import goex_tools as goex
from goex_tools.model import StepStatus
from goex_tools.policy import Policy, PolicyConfig, WebApprover
from tests.integrations.conftest import REPO, load_demo
from tests.ui.conftest import review_page

BINARY = "printf 'GIF89a\\001\\000\\001\\000\\000\\377' > pixel.gif"
TRIGGER = """
CREATE TABLE tier_changes (id INTEGER PRIMARY KEY, customer_id INTEGER, old TEXT, new TEXT);
CREATE TRIGGER log_tier AFTER UPDATE OF tier ON customers BEGIN
  INSERT INTO tier_changes (customer_id, old, new) VALUES (old.id, old.tier, new.tier);
END;
"""


def wait_for(browser: Any, found: Callable[[], Any], timeout: float = 20) -> Any:
    """`found()`'s first truthy value, looked for again until `timeout` (the page updates
    itself: elements are replaced under us)."""

    def attempt(_: Any) -> Any:
        try:
            return found()
        except StaleElementReferenceException:
            return None

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(attempt)


def text_of(browser: Any, css: str) -> str:
    elements = browser.find_elements(By.CSS_SELECTOR, css)
    return "\n".join(e.text for e in elements)


def shown(browser: Any, css: str, *words: str, timeout: float = 20) -> WebElement:
    """The element `css` once it shows every one of `words`."""

    def ready() -> WebElement | None:
        for element in browser.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and all(w in element.text for w in words):
                return element
        return None

    element: WebElement = wait_for(browser, ready, timeout)
    return element


def click(browser: Any, css: str) -> None:
    wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, css).is_displayed())
    browser.find_element(By.CSS_SELECTOR, css).click()


@pytest.fixture
def screenshots(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Save the whole page as PNG (palette colours, to keep it small): into the folder
    GOEX_UI_SCREENSHOTS names (the README's), else a temporary one."""
    folder = Path(os.environ.get("GOEX_UI_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)

    def take(browser: Any, name: str) -> Path:
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1200, min(max(int(height) + 100, 500), 2600))
        path = folder / f"{name}.png"
        browser.save_screenshot(str(path))
        browser.set_window_size(1200, 900)
        try:
            from PIL import Image
        except ImportError:
            return path
        with Image.open(path) as image:
            image.convert("RGB").quantize(colors=64).save(path, optimize=True)
        return path

    return take


@pytest.fixture
def world() -> Iterator[Any]:
    """The demo's world, its database with a trigger that writes a table no statement names."""
    created = load_demo().DemoWorld()
    with sqlite3.connect(created.db_path) as db:
        db.executescript(TRIGGER)
    db.close()
    yield created
    created.close()


def agent_run(world: Any, *, gate: Any = None, script: list[Any] | None = None) -> str:
    """A LangChain agent loop (`create_agent`, scripted model) over goex's tools; its run id."""
    from langchain_goex import GoexCallbackHandler, GoexToolkit
    from langchain_goex.chat_models import ScriptedChatModel

    demo = load_demo()
    turns = script if script is not None else world.script()
    tools = GoexToolkit(workspace=world.workspace, database=world.database, http=world.http)
    handler = GoexCallbackHandler(journal=world.journal, gate=gate)
    agent = demo.make_agent(ScriptedChatModel(script=turns), tools.get_tools(), world)
    run_id = str(uuid.uuid4())
    agent.invoke(
        {"messages": [("user", demo.TASK)]}, config={"callbacks": [handler], "run_id": run_id}
    )
    return run_id


def test_ui_reviews_an_agent_run_and_undoes_it_exactly(
    world: Any, browser: Any, screenshots: Callable[[Any, str], Path]
) -> None:
    before = world.snapshot()
    turns = world.script()
    script = [*turns[:-2], [("run_shell", {"command": BINARY})], *turns[-2:]]
    run_id = agent_run(world, script=script)
    pixel = (world.root / "pixel.gif").read_bytes()

    with review_page(world.journal.url) as page:
        browser.get(page.base + "/")
        assert "needs the token" in browser.find_element(By.TAG_NAME, "body").text
        browser.get(page.url)
        assert browser.current_url == page.base + "/"  # the token left the address bar
        row = shown(browser, f"tr.run[data-run='{run_id}']", "completed", "langchain")
        assert "8 applied" in row.text  # the effects of its 8 tool calls
        screenshots(browser, "runs")

        search = browser.find_element(By.CSS_SELECTOR, "input[name=q]")
        search.send_keys("tier_changes")  # a table only the trigger wrote
        shown(browser, f"tr.run[data-run='{run_id}']")
        search.clear()
        search.send_keys("no-such-table")
        shown(browser, "#runs", "No run touched")
        search.clear()
        search.send_keys("127.0.0.1")  # the REST service's host
        shown(browser, f"tr.run[data-run='{run_id}']").find_element(By.TAG_NAME, "a").click()

        calls = shown(browser, "#calls", "config.toml")
        text = calls.text
        # files: unified diffs, and binary content as size and hash
        for line in ("-debug = true", "+debug = false", "+# Spring sale", "+DONE: spring sale"):
            assert line in text
        assert f"{len(pixel)} B" in text and hashlib.sha256(pixel).hexdigest() in text
        # SQL: rows before and after per table, the trigger's table marked
        customers = shown(browser, "details.table", "customers", "1 updated")
        assert "silver" in customers.text and "gold" in customers.text
        assert "2 deleted" in shown(browser, "details.table", "orders").text
        trigger = shown(browser, "details.table", "tier_changes")
        assert "written by a cascade or trigger" in trigger.text
        assert "written by a cascade or trigger" not in customers.text
        # REST: the resource before and after
        created = shown(browser, "details.resource", "POST", "/items", "201")
        assert "gift card" in created.text and "(absent)" in created.text
        deleted = shown(browser, "details.resource", "DELETE", "/items/1")
        assert "paper planner" in deleted.text
        # calls of one turn that overlapped in time are marked; calls of later turns are not
        first, second, *_ = (s for s in world.journal.steps(run_id) if s.parent_id is None)
        together = first.created_at < second.updated_at and second.created_at < first.updated_at
        assert ("parallel with #2" in text_of(browser, "#call-1 > h2")) == together
        assert "parallel" not in text_of(browser, "#call-3 > h2")  # run_shell: a turn alone
        # the decision, the label, the undo
        assert "allowed by rule default" in text
        assert "undo: exact" in text and "exact: DELETE" in text
        # a file diff, side by side
        config = shown(browser, "details.file", "config.toml")
        config.find_element(By.CSS_SELECTOR, "label[for^='s-']").click()
        columns = config.find_element(By.CSS_SELECTOR, "table.sbs")
        assert columns.is_displayed()
        old = columns.find_element(By.CSS_SELECTOR, "tr.changed td.old").text
        new = columns.find_element(By.CSS_SELECTOR, "tr.changed td.new").text
        assert (old, new) == ("debug = true", "debug = false")
        screenshots(browser, "run")

        # undo the last tool call: the plan first, then the undo
        click(browser, "#plan-last")
        plan = shown(browser, "#the-plan", "delete_path", "be undone (exact)")
        assert "nothing is undone yet" in plan.text
        assert not (world.root / "old.log").exists()
        screenshots(browser, "plan")
        click(browser, "#confirm")
        shown(browser, "#the-result", "Undone", "restored exactly")
        assert world.snapshot()["files"]["old.log"] == before["files"]["old.log"]

        # then the whole run
        click(browser, "#plan-run")
        plan = shown(browser, "#the-plan", "run_sql", "http_request", "edit_file")
        assert "delete_path" not in plan.text  # undone already
        assert "CONFLICT" not in plan.text  # nobody changed what the agent left
        click(browser, "#confirm")
        result = shown(browser, "#the-result", "Undone: the whole run", "rolled back")
        assert "CONFLICT" not in result.text and "FAILED" not in result.text
        assert world.snapshot() == before
        # the page caught up by itself: every effect compensated, the run rolled back
        wait_for(browser, lambda: not browser.find_elements(By.CSS_SELECTOR, "#calls .applied"))
        shown(browser, "#run-status", "rolled back")
        assert "Undo this step" not in text_of(browser, "#calls")
        screenshots(browser, "undone")


def test_ui_undoes_one_step_and_everything_after_a_step(world: Any, browser: Any) -> None:
    before = world.snapshot()
    rules = world.dir / "policy.yaml"
    rules.write_text(
        "default: refuse\nfs:\n  rules:\n    - name: text\n      paths: ['*.txt']\n"
        "      decision: allow\n"
    )
    policy = Policy.from_file(rules)
    with goex.run("three writes", journal=world.journal, gate=policy) as ctx:
        for name in ("a", "b", "c"):
            world.workspace.write_file(f"{name}.txt", f"{name}\n")
    with review_page(world.journal.url) as page:
        browser.get(f"{page.base}/runs/{ctx.id}?token={page.token}")
        steps = {s.inputs["path"]: s.id for s in world.journal.steps(ctx.id)}
        decision = text_of(browser, f"#step-{steps['a.txt']} dd.decision")
        assert decision.startswith("allowed by rule text") and f"{rules}:4" in decision

        click(browser, f"#step-{steps['b.txt']} button.undo-step")
        shown(browser, "#the-plan", "step #2", "write_file")
        click(browser, "#confirm")
        shown(browser, "#the-result", "Undone: step #2")
        assert sorted(p.name for p in world.root.glob("*.txt")) == ["a.txt", "c.txt"]

        click(browser, f"#step-{steps['a.txt']} button.undo-after")
        plan = shown(browser, "#the-plan", "everything after step #1")
        assert plan.text.count("be undone") == 1  # only c: b is undone already
        click(browser, "#confirm")
        shown(browser, "#the-result", "Undone: everything after step #1")
        assert sorted(p.name for p in world.root.glob("*.txt")) == ["a.txt"]
    assert world.snapshot()["files"].keys() - before["files"].keys() == {"a.txt"}


ASKING = PolicyConfig.model_validate(
    {
        "default": "allow",
        "approval_timeout": 120,
        "fs": {"rules": [{"paths": ["*.txt"], "decision": "ask", "reason": "text is reviewed"}]},
    }
)


@pytest.mark.parametrize("journal_kind", ["sqlite", "postgres"])
def test_ui_approves_one_ask_and_refuses_another_while_the_agent_waits(
    world: Any,
    browser: Any,
    screenshots: Callable[[Any, str], Path],
    journal_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    if journal_kind == "postgres":  # a shared journal: the page and the agent meet there
        world.journal.close()
        world.journal = goex.Journal(request.getfixturevalue("pg_url"))
    (world.root / "keep.txt").write_text("keep me\n")
    before = world.snapshot()
    script = [
        [("write_file", {"path": "approved.txt", "content": "yes\n"})],
        [("delete_path", {"path": "keep.txt"})],
        "done",
    ]
    policy = Policy(ASKING, approver=WebApprover())
    finished: list[str] = []
    failures: list[BaseException] = []

    def agent() -> None:
        try:
            finished.append(agent_run(world, gate=policy, script=script))
        except BaseException as exc:
            failures.append(exc)

    with review_page(world.journal.url) as page:
        browser.get(page.url)
        shown(browser, "#runs", "No runs yet")
        worker = threading.Thread(target=agent, daemon=True)
        worker.start()
        # the new run appears without a reload, then the ask in the header
        shown(browser, "tr.run", "active")
        click(browser, "a.approvals.waiting")

        first = shown(browser, "article.ask", "fs.write_file", "approved.txt", "text is reviewed")
        assert "undo: exact" in first.text and "predicted effect" in first.text
        assert not (world.root / "approved.txt").exists()  # nothing runs unapproved
        screenshots(browser, "approvals")
        first.find_element(By.CSS_SELECTOR, "button.approve").click()

        second = shown(browser, "article.ask", "fs.delete_path", "keep.txt")  # live, no reload
        assert (world.root / "approved.txt").read_text() == "yes\n"
        second.find_element(By.CSS_SELECTOR, "button.refuse").click()
        shown(browser, "#asks", "Nothing waits for approval", "refused", "approved")
        worker.join(60)
        assert not worker.is_alive() and not failures, failures

    (run_id,) = finished
    steps = [s for s in world.journal.steps(run_id) if s.domain == "fs"]
    assert [(s.tool, s.status) for s in steps] == [
        ("write_file", StepStatus.APPLIED),
        ("delete_path", StepStatus.REFUSED),
    ]
    assert steps[0].decision is not None and steps[0].decision.approved_by == "the review page"
    assert "refused by the review page" in (steps[1].error or "")
    after = world.snapshot()
    assert after["files"]["keep.txt"] == before["files"]["keep.txt"]
    assert after["files"].keys() - before["files"].keys() == {"approved.txt"}


def test_ui_keeps_and_discards_held_commands_and_shows_a_conflict(world: Any, browser: Any) -> None:
    with goex.run("held commands", journal=world.journal) as ctx:
        kept = world.workspace.run_shell("echo kept > kept.txt", tentative=True)
        dropped = world.workspace.run_shell("echo dropped > dropped.txt", tentative=True)
        world.workspace.write_file("notes.txt", "v1\n")
    assert not (world.root / "kept.txt").exists()
    with review_page(world.journal.url) as page:
        browser.get(f"{page.base}/runs/{ctx.id}?token={page.token}")
        click(browser, f"#held-{kept.step_id} button.keep")
        shown(browser, f"#held-{kept.step_id}", "Kept")
        assert (world.root / "kept.txt").read_text() == "kept\n"
        click(browser, f"#held-{dropped.step_id} button.discard")
        shown(browser, f"#held-{dropped.step_id}", "Discarded")
        assert not (world.root / "dropped.txt").exists()

        (world.root / "notes.txt").write_text("a person's change\n")  # after the agent's
        notes = next(s.id for s in world.journal.steps(ctx.id) if s.tool == "write_file")
        click(browser, f"#step-{notes} button.undo-step")
        plan = shown(browser, "#the-plan", "write_file", "CONFLICT: changed since", "notes.txt")
        assert "1 step(s) would meet a conflict" in plan.text  # foreseen, before any undo
        click(browser, "#confirm")
        stopped = shown(browser, "#the-result.stopped", "CONFLICT", "notes.txt")
        assert "Undone" not in stopped.text
        assert (world.root / "notes.txt").read_text() == "a person's change\n"

        click(browser, f"#step-{notes} button.undo-step")
        shown(browser, "#the-plan", "write_file")
        browser.find_element(By.CSS_SELECTOR, "#the-plan input[name=force]").click()
        click(browser, "#confirm")
        shown(browser, "#the-result.ok", "Undone: step #3", "restored exactly")
        assert not (world.root / "notes.txt").exists()
