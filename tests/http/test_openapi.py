"""Undo rules inferred from OpenAPI documents, only where the document has the operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from goex_tools.domains.http import OpenAPIError, UndoRule, UndoRules, rules_from_openapi
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
            action="delete", method="DELETE", url=f"{base}/items/{{item_id}}", source="openapi"
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
