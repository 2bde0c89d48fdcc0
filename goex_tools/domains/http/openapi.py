"""Undo rules inferred from an OpenAPI 3 document, only where the document has the operations.

- create: `POST /c` undone by `DELETE /c/{p}`, with the id read from the field of the POST's
  response schema named like `{p}`, or `id`;
- update: `PUT|PATCH /c/{p}` undone by writing back (PUT if the document has it, else PATCH)
  the state a `GET /c/{p}` read just before;
- delete: `DELETE /c/{p}` undone by writing that state back with `PUT /c/{p}`, or else with
  `POST /c`; both need `GET /c/{p}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import yaml

from goex_tools.domains.http.rules import TEMPLATE_PARAM, UndoRule
from goex_tools.errors import GoexError

JSONDoc = dict[str, Any]


class OpenAPIError(GoexError):
    """A document that is not a usable OpenAPI 3 description."""


def load_document(document: object) -> tuple[JSONDoc, str | None]:
    """The document as a dict, and the URL it came from (to resolve relative servers)."""
    if isinstance(document, dict):
        return document, None
    text = str(document)
    if text.startswith(("http://", "https://")):
        try:
            response = httpx.get(text, timeout=30.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OpenAPIError(f"cannot fetch the OpenAPI document {text}: {exc}") from None
        return _parse(response.text, text), text
    path = Path(text)
    try:
        return _parse(path.read_text(), str(path)), None
    except OSError as exc:
        raise OpenAPIError(f"cannot read the OpenAPI document {path}: {exc}") from None


def rules_from_openapi(document: object, *, base_url: str | None = None) -> list[UndoRule]:
    """Every undo rule the document supports, with source `openapi`."""
    doc, origin = load_document(document)
    if not str(doc.get("openapi", "")).startswith("3"):
        raise OpenAPIError("only OpenAPI 3 documents are supported (no `openapi: 3.x` field)")
    base = _base_url(doc, base_url, origin)
    paths: dict[str, JSONDoc] = {p: ops for p, ops in doc.get("paths", {}).items()}
    rules: list[UndoRule] = []
    for item_path, ops in paths.items():
        collection, param = _split_item(item_path)
        if param is None or "get" not in ops:
            continue
        parent = paths.get(collection, {})
        if "post" in parent and "delete" in ops:
            id_field = _id_field(doc, parent["post"], param)
            if id_field is not None:
                rules.append(
                    _rule(
                        "create",
                        "POST",
                        base + collection,
                        item_url=base + item_path,
                        id_field=id_field,
                    )
                )
        restore = "PUT" if "put" in ops else "PATCH"
        for method in ("put", "patch"):
            if method in ops:
                rules.append(
                    _rule("update", method.upper(), base + item_path, restore_method=restore)
                )
        if "delete" in ops and ("put" in ops or "post" in parent):
            recreate = (
                {"recreate_method": "PUT"}
                if "put" in ops
                else {"recreate_method": "POST", "recreate_url": base + collection}
            )
            rules.append(_rule("delete", "DELETE", base + item_path, **recreate))
    return rules


def _rule(action: str, method: str, url: str, **fields: Any) -> UndoRule:
    return UndoRule.model_validate(
        {"action": action, "method": method, "url": url, "source": "openapi", **fields}
    )


def _parse(text: str, where: str) -> JSONDoc:
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OpenAPIError(f"{where} is neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict):
        raise OpenAPIError(f"{where} does not hold an OpenAPI object")
    return data


def _base_url(doc: JSONDoc, base_url: str | None, origin: str | None) -> str:
    if base_url is None:
        servers = doc.get("servers") or [{}]
        base_url = str(servers[0].get("url", ""))
        if origin is not None:
            base_url = urljoin(origin, base_url or "/")
    if not base_url.startswith(("http://", "https://")):
        raise OpenAPIError(
            "the document names no absolute server URL; pass base_url='https://host/prefix'"
        )
    return base_url.rstrip("/")


def _split_item(path: str) -> tuple[str, str | None]:
    """`/items/{id}` -> (`/items`, `id`); a path not ending in a parameter -> (path, None)."""
    head, _, last = path.rstrip("/").rpartition("/")
    name = TEMPLATE_PARAM.fullmatch(last)
    return (head or "/", name.group(1)) if name else (path, None)


def _id_field(doc: JSONDoc, post: JSONDoc, param: str) -> str | None:
    """The response field of a create that holds the new id, per the schema; None if unknown."""
    for status in ("201", "200", "2XX", "default"):
        response = _deref(doc, post.get("responses", {}).get(status))
        schema = _deref(
            doc, (response or {}).get("content", {}).get("application/json", {}).get("schema")
        )
        properties = (schema or {}).get("properties", {})
        for candidate in (param, "id"):
            if candidate in properties:
                return candidate
    return None


def _deref(doc: JSONDoc, node: Any) -> Any:
    """Follow local `$ref`s (`#/components/...`)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 32:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            raise OpenAPIError(f"only local $ref are supported, not {ref!r}")
        node = doc
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
        seen += 1
    return node
