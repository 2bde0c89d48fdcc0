"""GitHub's OpenAPI description, from the `@octokit/openapi` npm package, and Stoplight
Prism serving it as a validating mock on 127.0.0.1.

Prism 5 lets a request body through unchecked when the operation's schema has a property
with `nullable: true` and no `type` (GitHub's issue `milestone`: `oneOf` + `nullable`): its
validator rejects that schema, and Prism then validates nothing. Prism is given a copy in
which each such schema is written as the equivalent `anyOf: [<it>, {type: null}]`;
`test_prism.py` shows that Prism then refuses bodies GitHub's document forbids. The copy
also has the example values the document gives as `{"$ref": "#/components/examples/..."}`
resolved (Prism would answer with the `$ref` object itself), so that Prism answers with
GitHub's examples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.http.test_secrets import closed_port
from tests.support.npm import packages
from tests.support.service_process import running

START_TIMEOUT = 120  # seconds; Prism reads the 13 MB document in about 17 s here


def document_path() -> Path:
    return packages() / "@octokit" / "openapi" / "generated" / "api.github.com.json"


def for_prism() -> Path:
    """The copy of the document Prism is given (made once per document, beside it)."""
    source = document_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = source.parent.parent.parent.parent / f".api.github.com.prism-{digest}.json"
    if not target.exists():
        document = _nullable_as_any_of(json.loads(source.read_text()))
        document = _examples_resolved(document, document["components"]["examples"])
        partial = target.with_suffix(".part")
        partial.write_text(json.dumps(document))
        partial.rename(target)
    return target


def _nullable_as_any_of(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_as_any_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_as_any_of(value) for key, value in node.items()}
    if node.get("nullable") is True and "type" not in node:
        rest = {key: value for key, value in node.items() if key != "nullable"}
        return {"anyOf": [rest, {"type": "null"}]}
    return node


def _examples_resolved(node: Any, examples: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_examples_resolved(item, examples) for item in node]
    if not isinstance(node, dict):
        return node
    value = node.get("value")
    if isinstance(value, dict) and set(value) == {"$ref"}:
        name = str(value["$ref"]).removeprefix("#/components/examples/")
        if name in examples:
            node = {**node, "value": examples[name].get("value")}
    return {key: _examples_resolved(item, examples) for key, item in node.items()}


def prism(log: Path) -> Iterator[str]:
    """Prism's validating mock of GitHub's API; yields its base URL.

    A request the document forbids is answered 4xx; a request it accepts, with one of the
    document's examples. Each answer lists Prism's findings in an `sl-violations` header:
    `violations` reads the request's. (Not `--errors`: it also turns GitHub's own examples,
    some of which lack required properties, into 500s.)"""
    document = for_prism()
    port = closed_port()
    binary = packages() / ".bin" / "prism"
    command = [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(document)]
    with running(command, log=log, ready=b"Prism is listening", timeout=START_TIMEOUT):
        url = f"http://127.0.0.1:{port}"
        httpx.get(f"{url}/zen", timeout=10).raise_for_status()
        yield url


def violations(headers: Any) -> list[Any]:
    """What Prism found wrong with a request (not with its own answer), from its headers."""
    found = json.loads(headers.get("sl-violations") or "[]")
    return [v for v in found if v.get("location", [""])[0] == "request"]


def accepts_undos(prism_url: str, steps: list[Any], base: str) -> int:
    """Send the undo of every step (made against `base`) to Prism instead, as a rollback
    would build it if nothing changed since the step; fail unless Prism accepts each.
    Returns how many were sent."""
    from goex_tools.domains.http import RevertArgs
    from goex_tools.domains.http.undo import UndoCall, undo_request

    count = 0
    for step in steps:
        if step.compensation is None or step.compensation.kind != "http.revert":
            continue
        args = RevertArgs.model_validate(step.compensation.args)
        assert args.unavailable is None, args.unavailable
        rebased = UndoCall.model_validate(
            {**args.call.model_dump(), "url": args.call.url.replace(base, prism_url, 1)}
        )
        same = args.call.url == args.check_url
        call = undo_request(args, rebased, {"Accept": "application/json"}, args.after, same)
        response = httpx.request(
            call.method, call.url, headers=call.headers, json=call.body, timeout=30
        )
        assert response.status_code < 400, f"Prism refused {call}: {response.text[:500]}"
        assert violations(response.headers) == [], (call, violations(response.headers))
        count += 1
    return count
