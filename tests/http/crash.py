"""Sends one call in a run and dies at a chosen moment, as a crashed agent process would.

python -m tests.http.crash JOURNAL_URL BASE_URL METHOD PATH JSON before_send|after_send
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import goex_tools as goex
from goex_tools.domains.http import HttpTool
from goex_tools.domains.http import tool as http_tool
from goex_tools.runtime import StepHandle
from tests.http.conftest import AUTH, registered_rules


def die(*_: Any, **__: Any) -> Any:
    os._exit(17)


def main() -> None:
    journal_url, base, method, path, body, moment = sys.argv[1:]
    if moment == "before_send":
        http_tool.open_response = die  # type: ignore[assignment]
    else:
        StepHandle.finish = die  # type: ignore[method-assign]
    with goex.run("crashing", journal=journal_url):
        HttpTool(registered_rules(base)).request(method, base + path, AUTH, json.loads(body))


if __name__ == "__main__":
    main()
