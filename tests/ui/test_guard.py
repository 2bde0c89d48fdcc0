"""Who may use the review page: only a holder of the printed token, only at the printed
address; changes only by POST with the page's CSRF token, from the page itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import goex_tools as goex
from tests.ui.conftest import Page, review_page


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guard") / "journal.db"


@pytest.fixture(scope="module")
def run_id(where: Path) -> str:
    journal = goex.Journal(f"sqlite:///{where}")
    with goex.run("an agent's run", journal=journal) as ctx:
        made = ctx.id
    journal.close()
    return made


@pytest.fixture(scope="module")
def page(where: Path, run_id: str) -> Iterator[Page]:
    """One page for the module: these tests only read, or are refused."""
    with review_page(f"sqlite:///{where}") as found:
        yield found


def logged_in(page: Page) -> tuple[httpx.Client, str]:
    """A client holding the session cookie, and the CSRF token of the page it was given."""
    client = httpx.Client(base_url=page.base, timeout=10)
    first = client.get(f"/?token={page.token}")
    assert first.status_code == 303 and first.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    found = re.search(r"x-goex-csrf&#34;: &#34;([0-9a-f]+)&#34;", home.text)
    assert found, home.text[:500]
    return client, found.group(1)


@pytest.mark.parametrize(
    "path", ["/", "/runs/x", "/approvals", "/events", "/static/ui.js", "/fragments/runs"]
)
def test_ui_refuses_every_request_without_the_token(page: Page, path: str) -> None:
    answer = httpx.get(page.base + path, timeout=10)
    assert answer.status_code == 403
    assert "needs the token" in answer.text
    assert "goex review" not in answer.text


def test_ui_refuses_a_wrong_token_and_a_forged_cookie(page: Page) -> None:
    assert httpx.get(f"{page.base}/?token=x{page.token}", timeout=10).status_code == 403
    forged = httpx.get(page.base + "/", cookies={"goex_ui": page.token}, timeout=10)
    assert forged.status_code == 403  # the cookie holds the session, not the token


def test_ui_token_logs_in_once_and_leaves_the_url(page: Page) -> None:
    client, _ = logged_in(page)
    cookie = next(c for c in client.cookies.jar if c.name == "goex_ui")
    assert cookie.value != page.token
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert client.get("/approvals").status_code == 200


def test_ui_refuses_another_host_name_even_with_the_token(page: Page) -> None:
    """DNS rebinding: a page of evil.example resolving to 127.0.0.1 reaches the port."""
    port = page.base.rsplit(":", 1)[1]
    answer = httpx.get(
        f"{page.base}/?token={page.token}", headers={"Host": f"evil.example:{port}"}, timeout=10
    )
    assert answer.status_code == 403


def test_ui_refuses_a_change_without_the_csrf_token(page: Page, run_id: str) -> None:
    client, csrf = logged_in(page)
    form = {"scope": "run"}
    assert client.post(f"/runs/{run_id}/undo", data=form).status_code == 403
    wrong = client.post(f"/runs/{run_id}/undo", data=form, headers={"X-Goex-CSRF": csrf[::-1]})
    assert wrong.status_code == 403
    token_only = httpx.post(
        f"{page.base}/runs/{run_id}/undo?token={page.token}", data=form, timeout=10
    )
    assert token_only.status_code == 403  # the token alone is no CSRF token


def test_ui_refuses_a_change_from_another_origin(page: Page, run_id: str) -> None:
    client, csrf = logged_in(page)
    for headers in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        answer = client.post(
            f"/runs/{run_id}/plan", data={"scope": "run"}, headers={"X-Goex-CSRF": csrf, **headers}
        )
        assert answer.status_code == 403, headers
    same = client.post(
        f"/runs/{run_id}/plan",
        data={"scope": "run"},
        headers={"X-Goex-CSRF": csrf, "Origin": page.base, "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 200 and "Nothing to undo" in same.text


def test_ui_changes_are_posts_only(page: Page, run_id: str) -> None:
    client, _ = logged_in(page)
    got = client.get(f"/runs/{run_id}/undo", params={"scope": "run"})
    assert got.status_code == 405


def test_ui_pages_forbid_framing_and_inline_scripts(page: Page) -> None:
    client, _ = logged_in(page)
    headers = client.get("/").headers
    assert headers["x-frame-options"] == "DENY"
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert headers["referrer-policy"] == "no-referrer"
