"""The review page under test: a real `goex ui` process on a journal, found at the URL it
prints; the demo's world (a workspace, an SQLite database, a REST service on 127.0.0.1)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integrations.conftest import load_demo

GOEX = [sys.executable, "-m", "goex_tools.cli"]
ANNOUNCED = re.compile(r"goex review page at (\S+)")


@dataclass(frozen=True)
class Page:
    """A running `goex ui`: its address and its token."""

    base: str  # http://127.0.0.1:PORT
    token: str

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"


@contextmanager
def review_page(journal_url: str) -> Iterator[Page]:
    """`goex ui --journal URL --port 0` in a process of its own, until the block ends."""
    command = [*GOEX, "ui", "--journal", journal_url, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        found = ANNOUNCED.search(line)
        if not found:
            process.kill()
            pytest.fail(f"goex ui did not start: {line}{process.stderr.read()}")
        url = urlsplit(found.group(1))
        yield Page(f"{url.scheme}://{url.netloc}", parse_qs(url.query)["token"][0])
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def world() -> Iterator[Any]:
    """The demo's world with its own journal (see scripts/demo.py)."""
    created = load_demo().DemoWorld()
    yield created
    created.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless chromium, driven through its own chromedriver (no download)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (setup.sh --dev)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",  # no traffic but to 127.0.0.1
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()
