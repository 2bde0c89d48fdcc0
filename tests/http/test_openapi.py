"""Undo rules inferred from OpenAPI documents, only where the document has the operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from goex_tools import Reversibility
from goex_tools.domains.http import (
    ChildRule,
    HttpTool,
    OpenAPIError,
    UndoRule,
    UndoRules,
    rules_from_openapi,
)
from goex_tools.domains.http.fields import matches
from tests.http.service import Service

GITHUB_LIKE = """
openapi: 3.0.3
info: {title: tracker, version: "1"}
servers: [{url: "https://api.example.com/v1"}]
paths:
  /repos/{owner}/issues:
    post:
      responses:
        "201":
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Issue"}
  /repos/{owner}/issues/{number}:
    get: {responses: {"200": {description: ok}}}
    patch: {responses: {"200": {description: ok}}}
  /labels:
    post:
      responses:
        "201": {$ref: "#/components/responses/Label"}
  /labels/{name}:
    get: {responses: {"200": {description: ok}}}
    put: {responses: {"200": {description: ok}}}
    delete: {responses: {"204": {description: gone}}}
  /emails:
    post: {responses: {"202": {description: queued}}}
components:
  schemas:
    Issue: {type: object, properties: {number: {type: integer}, title: {type: string}}}
    Label: {type: object, properties: {name: {type: string}, color: {type: string}}}
  responses:
    Label:
      description: created
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Label"}
"""


def test_rules_from_the_live_fastapi_document(service: Service) -> None:
    base = service.url
    rules = rules_from_openapi(f"{base}/openapi.json")
    assert rules == [
        UndoRule(
            action="create",
            method="POST",
            url=f"{base}/items",
            item_url=f"{base}/items/{{item_id}}",
            source="openapi",
        ),
        UndoRule(
            action="update",
            method="PUT",
            url=f"{base}/items/{{item_id}}",
            can_patch=True,
            source="openapi",
        ),
        UndoRule(
            action="update",
            method="PATCH",
            url=f"{base}/items/{{item_id}}",
            can_patch=True,
            source="openapi",
        ),
        UndoRule(
            action="delete",
            method="DELETE",
            url=f"{base}/items/{{item_id}}",
            children=[ChildRule(suffix="/tags", recreate_method=None)],
            source="openapi",
        ),
    ]


def test_rules_only_where_the_document_has_the_operations(tmp_path: Path) -> None:
    path = tmp_path / "tracker.yaml"
    path.write_text(GITHUB_LIKE)
    base = "https://api.example.com/v1"
    assert rules_from_openapi(path) == [
        # issues: no DELETE, so a create cannot be undone; PATCH is restored with PATCH
        UndoRule(
            action="update",
            method="PATCH",
            url=f"{base}/repos/{{owner}}/issues/{{number}}",
            restore_method="PATCH",
            can_patch=True,
            source="openapi",
        ),
        UndoRule(
            action="create",
            method="POST",
            url=f"{base}/labels",
            item_url=f"{base}/labels/{{name}}",
            id_field="name",
            source="openapi",
        ),
        UndoRule(action="update", method="PUT", url=f"{base}/labels/{{name}}", source="openapi"),
        UndoRule(action="delete", method="DELETE", url=f"{base}/labels/{{name}}", source="openapi"),
    ]
    rules = UndoRules().add_openapi(path)
    assert rules.match("POST", f"{base}/repos/me/issues") is None
    assert rules.match("POST", f"{base}/emails") is None
    found = rules.match("patch", f"{base}/repos/me/issues/12?x=1")
    assert found is not None and found.params == {"owner": "me", "number": "12"}
    created = rules.match("POST", f"{base}/labels/")
    assert created is not None and created.new_id_param() == "name"
    assert rules.match("POST", "https://api.example.com/v2/labels") is None


def test_documents_that_cannot_be_used_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OpenAPIError, match=r"only OpenAPI 3 and Swagger 2\.0"):
        rules_from_openapi({"swagger": "1.2", "paths": {}})
    with pytest.raises(OpenAPIError, match="no absolute server URL"):
        rules_from_openapi({"swagger": "2.0", "basePath": "/v1", "paths": {}})
    with pytest.raises(OpenAPIError, match="no absolute server URL"):
        rules_from_openapi({"openapi": "3.1.0", "servers": [{"url": "/v1"}], "paths": {}})
    assert (
        rules_from_openapi(
            {"openapi": "3.1.0", "servers": [{"url": "/v1"}], "paths": {}},
            base_url="https://h.example/v1/",
        )
        == []
    )
    with pytest.raises(OpenAPIError, match="cannot read"):
        rules_from_openapi(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(OpenAPIError, match="does not hold an OpenAPI object"):
        rules_from_openapi(tmp_path / "list.json")
    remote = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://h.example"}],
        "paths": {
            "/a": {"post": {"responses": {"201": {"$ref": "https://x.example/r.json"}}}},
            "/a/{id}": {"get": {}, "delete": {}},
        },
    }
    with pytest.raises(OpenAPIError, match="only local \\$ref"):
        rules_from_openapi(remote)


SWAGGER = {
    "swagger": "2.0",
    "host": "api.example.com",
    "basePath": "/v2",
    "schemes": ["https"],
    "paths": {
        "/users": {"post": {"responses": {"201": {"schema": {"$ref": "#/definitions/Created"}}}}},
        "/users/{user_id}": {
            "get": {"responses": {"200": {"schema": {"$ref": "#/definitions/User"}}}},
            "put": {"parameters": [{"in": "body", "name": "u", "schema": {"type": "object"}}]},
            "delete": {},
        },
        "/users/{uid}/keys": {
            "get": {"responses": {"200": {"schema": {"type": "array", "items": {}}}}},
        },
        "/users/{uid}/keys/{key_id}": {"get": {}, "delete": {}},
    },
    "definitions": {
        "Created": {
            "type": "object",
            "properties": {"data": {"type": "object", "properties": {"id": {"type": "string"}}}},
        },
        "User": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "updated": {"type": "string", "readOnly": True},
                        "secret": {"type": "string", "writeOnly": True},
                    },
                }
            },
        },
    },
}


def test_a_swagger_2_document_gives_nested_ids_fields_and_children() -> None:
    rules = {(r.action, r.method): r for r in rules_from_openapi(SWAGGER)}
    base = "https://api.example.com/v2"
    create = rules["create", "POST"]
    assert (create.url, create.item_url, create.id_field) == (
        f"{base}/users",
        f"{base}/users/{{user_id}}",
        "data.id",  # nested in the 201 schema
    )
    update = rules["update", "PUT"]
    assert update.ignore_fields == ["data.updated"] and update.write_only == ["data.secret"]
    delete = rules["delete", "DELETE"]
    # keys under a user can be listed but not re-created: deleting a user who has keys
    # cannot be undone, one who has none can
    assert [(c.suffix, c.items_field, c.recreate_method) for c in delete.children] == [
        ("/keys", None, None)
    ]


def test_a_call_setting_a_write_only_field_is_irreversible_before_sending() -> None:
    api = HttpTool(UndoRules().add_openapi(SWAGGER))
    url = "https://api.example.com/v2/users/7"
    setting = api.classify("PUT", url, {}, {"data": {"name": "x", "secret": "s3cret"}})
    assert setting.reversibility is Reversibility.IRREVERSIBLE
    assert "sets data.secret" in setting.notes[0]
    assert api.classify("PUT", url, {}, {"data": {"name": "x"}}).reversibility is (
        Reversibility.REVERSIBLE
    )
    deleting = api.classify("DELETE", url, {})
    assert deleting.reversibility is Reversibility.IRREVERSIBLE  # re-creating needs the secret


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("data.last_modified", ("data", "last_modified"), True),
        ("data.last_modified", ("last_modified",), False),
        ("**.updated_at", ("updated_at",), True),
        ("**.updated_at", ("a", "0", "updated_at"), True),
        ("items.*.etag", ("items", "3", "etag"), True),
        ("items.*.etag", ("items", "etag"), False),
    ],
)
def test_field_patterns_name_nested_paths(pattern: str, path: tuple[str, ...], hit: bool) -> None:
    assert matches(pattern, path) is hit
