"""Undo rules inferred from an OpenAPI 3 or Swagger 2.0 document, only where the document has
the operations.

- create: `POST /c` undone by `DELETE /c/{p}`, with the id read from the field of the POST's
  response schema named like `{p}`, or `id`, at the top or nested (`data.id`); a schema
  that names no such field leaves the id to the response's Location header;
- update: `PUT|PATCH /c/{p}` undone by writing back (PUT if the document has it, else PATCH)
  the state a `GET /c/{p}` read just before;
- delete: `DELETE /c/{p}` undone by writing that state back with `PUT /c/{p}`, or else with
  `POST /c`; both need `GET /c/{p}`. Collections under the item (`/c/{p}/sub`, which the
  service may delete with it) are read before and re-created after it; where the document
  gives no way to read or re-create them, their items must be absent when the call is sent.
- `readOnly` properties of the item's schema are server-managed (not compared, not written
  back), `writeOnly` ones write-only (a call setting one is irreversible; see `fields`).

A document given as a file or a URL is read once per content: the rules inferred from it are
cached under the SHA-256 of its bytes (with the base URL and the version of this inference),
in the process and in `$GOEX_CACHE_DIR/openapi` (default ~/.cache/goex-tools/openapi), so a
large document (GitHub's is 13 MB) costs its parse only the first time.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import yaml

from goex_tools.domains.http.errors import OpenAPIError
from goex_tools.domains.http.rule import TEMPLATE_PARAM, ChildRule, UndoRule

JSONDoc = dict[str, Any]
MAX_DEPTH = 8  # how deep schemas are walked for readOnly / writeOnly / id fields
INFERENCE = "1"  # part of the cache key: change it when what is inferred changes
CACHE_ENV = "GOEX_CACHE_DIR"


def load_document(document: object) -> tuple[JSONDoc, str | None]:
    """The document as a dict, and the URL it came from (to resolve relative servers)."""
    if isinstance(document, dict):
        return document, None
    raw, where, origin = _read(document)
    return _parse(raw.decode("utf-8", errors="replace"), where), origin


def _read(document: object) -> tuple[bytes, str, str | None]:
    """A document's bytes, what to call it in errors, and its URL (None for a file)."""
    text = str(document)
    if text.startswith(("http://", "https://")):
        try:
            response = httpx.get(text, timeout=30.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OpenAPIError(f"cannot fetch the OpenAPI document {text}: {exc}") from None
        return response.content, text, text
    path = Path(text)
    try:
        return path.read_bytes(), str(path), None
    except OSError as exc:
        raise OpenAPIError(f"cannot read the OpenAPI document {path}: {exc}") from None


def rules_from_openapi(document: object, *, base_url: str | None = None) -> list[UndoRule]:
    """Every undo rule the document supports, with source `openapi` (cached by the
    document's content when it is given as a file or URL)."""
    if isinstance(document, dict):
        return _inferred(document, None, base_url)
    raw, where, origin = _read(document)
    key = hashlib.sha256(
        b"\0".join(s.encode() for s in (INFERENCE, base_url or "", origin or "")) + b"\0" + raw
    ).hexdigest()
    cached = _cached(key)
    if cached is not None:
        return cached
    rules = _inferred(_parse(raw.decode("utf-8", errors="replace"), where), origin, base_url)
    _remember(key, rules)
    return rules


_memory: dict[str, list[UndoRule]] = {}
_memory_lock = threading.Lock()


def _cache_file(key: str) -> Path:
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "goex-tools"
    return Path(root) / "openapi" / f"{key}.json"


def _cached(key: str) -> list[UndoRule] | None:
    with _memory_lock:
        if key in _memory:
            return [rule.model_copy() for rule in _memory[key]]
    try:
        stored = json.loads(_cache_file(key).read_text())
        rules = [UndoRule.model_validate(item) for item in stored]
    except (OSError, ValueError):  # absent, unreadable or from another version: infer again
        return None
    with _memory_lock:
        _memory[key] = rules
    return [rule.model_copy() for rule in rules]


def _remember(key: str, rules: list[UndoRule]) -> None:
    with _memory_lock:
        _memory[key] = rules
    path = _cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_text(json.dumps([rule.model_dump(mode="json") for rule in rules]))
        partial.replace(path)
    except OSError:
        pass  # a cache that cannot be written costs the next parse, nothing else


def _inferred(doc: JSONDoc, origin: str | None, base_url: str | None) -> list[UndoRule]:
    api = _Document(doc)
    base = _base_url(api, base_url, origin)
    rules: list[UndoRule] = []
    for item_path, ops in api.paths.items():
        collection, param = _split_item(item_path)
        if param is None or "get" not in ops:
            continue
        parent = api.paths.get(collection, {})
        fields = api.item_fields(ops)
        if "post" in parent and "delete" in ops:
            id_field = api.id_field(parent["post"], param)
            rules.append(
                _rule(
                    "create",
                    "POST",
                    base + collection,
                    item_url=base + item_path,
                    id_field=id_field or "",
                    **fields,
                )
            )
        restore = "PUT" if "put" in ops else "PATCH"
        for method in ("put", "patch"):
            if method in ops:
                rules.append(
                    _rule(
                        "update",
                        method.upper(),
                        base + item_path,
                        restore_method=restore,
                        can_patch="patch" in ops,
                        **fields,
                    )
                )
        if "delete" in ops and ("put" in ops or "post" in parent):
            recreate = (
                {"recreate_method": "PUT"}
                if "put" in ops
                else {"recreate_method": "POST", "recreate_url": base + collection}
            )
            children = api.children(item_path)
            rules.append(
                _rule("delete", "DELETE", base + item_path, children=children, **recreate, **fields)
            )
    return rules


def _rule(action: str, method: str, url: str, **fields: Any) -> UndoRule:
    return UndoRule.model_validate(
        {"action": action, "method": method, "url": url, "source": "openapi", **fields}
    )


class _Document:
    """An OpenAPI 3 or Swagger 2.0 document, read through one interface."""

    def __init__(self, doc: JSONDoc) -> None:
        if str(doc.get("openapi", "")).startswith("3"):
            self.version = 3
        elif str(doc.get("swagger", "")) == "2.0":
            self.version = 2
        else:
            raise OpenAPIError(
                "only OpenAPI 3 and Swagger 2.0 documents are supported "
                '(no `openapi: 3.x` or `swagger: "2.0"` field)'
            )
        self.doc = doc
        self.paths: dict[str, JSONDoc] = {
            p: ops for p, ops in (doc.get("paths") or {}).items() if isinstance(ops, dict)
        }

    def deref(self, node: Any) -> Any:
        """Follow local `$ref`s (`#/components/...`, `#/definitions/...`)."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise OpenAPIError(f"only local $ref are supported, not {ref!r}")
            node = self.doc
            for part in ref[2:].split("/"):
                node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
            seen += 1
        return node

    def response_schema(self, operation: JSONDoc, statuses: tuple[str, ...]) -> JSONDoc:
        """The JSON schema of the first of `statuses` the operation documents."""
        for status in statuses:
            response = self.deref((operation.get("responses") or {}).get(status))
            if not isinstance(response, dict):
                continue
            if self.version == 2:
                schema = response.get("schema")
            else:
                schema = _json_content(response.get("content") or {})
            schema = self.deref(schema)
            if isinstance(schema, dict):
                return schema
        return {}

    def body_schema(self, operation: JSONDoc) -> JSONDoc:
        if self.version == 2:
            for parameter in operation.get("parameters") or []:
                parameter = self.deref(parameter)
                if isinstance(parameter, dict) and parameter.get("in") == "body":
                    schema = self.deref(parameter.get("schema"))
                    return schema if isinstance(schema, dict) else {}
            return {}
        body = self.deref(operation.get("requestBody")) or {}
        schema = self.deref(_json_content(body.get("content") or {}))
        return schema if isinstance(schema, dict) else {}

    def properties(self, schema: Any) -> dict[str, Any]:
        """A schema's properties, `allOf` parts merged."""
        schema = self.deref(schema)
        if not isinstance(schema, dict):
            return {}
        found = dict(schema.get("properties") or {})
        for part in schema.get("allOf") or []:
            found.update(self.properties(part))
        return found

    def marked(self, schema: Any, flag: str, prefix: str = "", depth: int = 0) -> list[str]:
        """Dotted paths of the properties marked `flag` (readOnly, writeOnly)."""
        schema = self.deref(schema)
        if depth > MAX_DEPTH or not isinstance(schema, dict):
            return []
        if schema.get("type") == "array" or "items" in schema:
            return self.marked(schema.get("items"), flag, f"{prefix}*.", depth + 1)
        paths = []
        for name, sub in self.properties(schema).items():
            sub = self.deref(sub)
            if isinstance(sub, dict) and sub.get(flag) is True:
                paths.append(prefix + name)
            else:
                paths += self.marked(sub, flag, f"{prefix}{name}.", depth + 1)
        return paths

    def item_fields(self, ops: JSONDoc) -> dict[str, list[str]]:
        """readOnly / writeOnly paths of an item, from its GET answer and its write bodies."""
        schemas = [self.response_schema(ops["get"], ("200", "2XX", "default"))]
        schemas += [self.body_schema(ops[m]) for m in ("put", "patch") if m in ops]
        read_only = sorted({p for s in schemas for p in self.marked(s, "readOnly")})
        write_only = sorted({p for s in schemas for p in self.marked(s, "writeOnly")})
        fields: dict[str, list[str]] = {}
        if read_only:
            fields["ignore_fields"] = read_only
        if write_only:
            fields["write_only"] = write_only
        return fields

    def id_field(self, post: JSONDoc, param: str) -> str | None:
        """The response field of a create that holds the new id (`data.id`), per the schema;
        None if the schema names none."""
        schema = self.response_schema(post, ("201", "200", "2XX", "default"))
        level: list[tuple[str, Any]] = [("", schema)]
        for _ in range(3):  # breadth first: the shallowest match wins
            deeper: list[tuple[str, Any]] = []
            for prefix, node in level:
                properties = self.properties(node)
                for candidate in (param, "id"):
                    if candidate in properties:
                        return prefix + candidate
                deeper += [(f"{prefix}{name}.", sub) for name, sub in properties.items()]
            level = deeper
        return None

    def list_field(self, operation: JSONDoc) -> str | None:
        """Where a listing's items are: None for a JSON array, else the dotted path of the
        array property (`data`)."""
        schema = self.response_schema(operation, ("200", "2XX", "default"))
        if schema.get("type") == "array":
            return None
        arrays = [
            name
            for name, sub in self.properties(schema).items()
            if self.deref(sub).get("type") == "array"
        ]
        return arrays[0] if len(arrays) == 1 else None

    def children(self, item_path: str, depth: int = 0) -> list[ChildRule]:
        """The collections under an item (`/c/{p}/sub`), with how to list and re-create
        their items, recursively."""
        shape = _shape(item_path)
        found: list[ChildRule] = []
        for path, ops in self.paths.items():
            if depth > 4 or not _shape(path).startswith(shape + "/") or path == item_path:
                continue
            suffix = _shape(path)[len(shape) :]
            if "{}" in suffix or "get" not in ops:
                continue  # items of a sub-collection are reached through it
            sub_item = next(
                (
                    p
                    for p in self.paths
                    if _split_item(p)[0] == path.rstrip("/") and _split_item(p)[1] is not None
                ),
                None,
            )
            item_ops = self.paths.get(sub_item or "", {})
            param = _split_item(sub_item)[1] if sub_item else None
            can_put = "put" in item_ops and "get" in item_ops
            can_post = "post" in ops and "get" in item_ops
            found.append(
                ChildRule(
                    suffix=suffix,
                    items_field=self.list_field(ops["get"]),
                    id_field="id" if param is None else _listed_id(self, ops["get"], param),
                    recreate_method="PUT" if can_put else "POST" if can_post else None,
                    children=self.children(sub_item, depth + 1) if sub_item else [],
                )
            )
        return found


def _listed_id(api: _Document, operation: JSONDoc, param: str) -> str:
    """The field of a listed entry that holds its id: named like the parameter, or `id`."""
    schema = api.response_schema(operation, ("200", "2XX", "default"))
    entries = schema.get("items") if schema.get("type") == "array" else None
    if entries is None:
        field = api.list_field(operation)
        entries = api.deref(api.properties(schema).get(field or "", {})).get("items")
    return param if param in api.properties(entries) else "id"


def _json_content(content: JSONDoc) -> Any:
    for media, entry in content.items():
        if media.split(";")[0].strip().endswith("json") and isinstance(entry, dict):
            return entry.get("schema")
    return None


def _shape(path: str) -> str:
    """A path with its parameters unnamed: `/b/{bucket_id}/c` and `/b/{id}/c` are alike."""
    return TEMPLATE_PARAM.sub("{}", path.rstrip("/"))


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


def _base_url(api: _Document, base_url: str | None, origin: str | None) -> str:
    if base_url is None and api.version == 2:
        doc, where = api.doc, urlsplit(origin or "")
        host = doc.get("host") or where.netloc
        scheme = (doc.get("schemes") or [where.scheme or "https"])[0]
        if host:
            base_url = f"{scheme}://{host}{doc.get('basePath') or ''}"
    elif base_url is None:
        servers = api.doc.get("servers") or [{}]
        base_url = str(servers[0].get("url", ""))
        if origin is not None:
            base_url = urljoin(origin, base_url or "/")
    if not base_url or not base_url.startswith(("http://", "https://")):
        raise OpenAPIError(
            "the document names no absolute server URL; pass base_url='https://host/prefix'"
        )
    return base_url.rstrip("/")


def _split_item(path: str) -> tuple[str, str | None]:
    """`/items/{id}` -> (`/items`, `id`); a path not ending in a parameter -> (path, None)."""
    head, _, last = path.rstrip("/").rpartition("/")
    name = TEMPLATE_PARAM.fullmatch(last)
    return (head or "/", name.group(1)) if name else (path, None)
