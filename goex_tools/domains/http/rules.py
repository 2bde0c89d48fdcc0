"""`UndoRules`: the ordered set of undo rules a `HttpTool` consults, registered by hand or
read from an OpenAPI document. What one rule says is in `rule`.
"""

from __future__ import annotations

from typing import Literal

from goex_tools.domains.http.openapi import rules_from_openapi
from goex_tools.domains.http.rule import (
    TEMPLATE_PARAM,
    Action,
    ChildRule,
    Exactness,
    RuleMatch,
    Source,
    UndoRule,
    match_template,
)

__all__ = [
    "TEMPLATE_PARAM",
    "Action",
    "ChildRule",
    "Exactness",
    "RuleMatch",
    "Source",
    "UndoRule",
    "UndoRules",
    "match_template",
]


class UndoRules:
    """An ordered set of rules; registered rules win over ones inferred from OpenAPI."""

    def __init__(self, rules: list[UndoRule] | None = None) -> None:
        self.rules: list[UndoRule] = list(rules or [])

    def add(self, *rules: UndoRule) -> UndoRules:
        self.rules.extend(rules)
        return self

    def create(
        self, url: str, *, item_url: str, method: str = "POST", id_field: str = "id"
    ) -> UndoRules:
        """`POST url` creates a resource at `item_url` (its last `{param}` = the new id)."""
        return self.add(
            UndoRule(action="create", method=method, url=url, item_url=item_url, id_field=id_field)
        )

    def update(
        self,
        url: str,
        *,
        methods: tuple[str, ...] = ("PUT", "PATCH"),
        restore_method: Literal["PUT", "PATCH"] = "PUT",
        ignore_fields: list[str] | None = None,
        write_only: list[str] | None = None,
    ) -> UndoRules:
        """`PUT/PATCH url` changes the resource at `url`; undone by writing it back."""
        for method in methods:
            self.add(
                UndoRule(
                    action="update",
                    method=method,
                    url=url,
                    restore_method=restore_method,
                    can_patch="PATCH" in (m.upper() for m in methods),
                    ignore_fields=ignore_fields or [],
                    write_only=write_only or [],
                )
            )
        return self

    def delete(
        self,
        url: str,
        *,
        recreate_method: Literal["PUT", "POST"] = "PUT",
        recreate_url: str | None = None,
        ignore_fields: list[str] | None = None,
        write_only: list[str] | None = None,
        children: list[ChildRule] | None = None,
    ) -> UndoRules:
        """`DELETE url` removes the resource (and the items of `children`); undone by
        `recreate_method recreate_url`, then re-creating those items."""
        return self.add(
            UndoRule(
                action="delete",
                method="DELETE",
                url=url,
                recreate_method=recreate_method,
                recreate_url=recreate_url,
                ignore_fields=ignore_fields or [],
                write_only=write_only or [],
                children=children or [],
            )
        )

    def irreversible(self, method: str, url: str) -> UndoRules:
        """Calls nothing can undo: classified irreversible before they are sent."""
        return self.add(UndoRule(action="irreversible", method=method, url=url))

    def add_openapi(self, document: object, *, base_url: str | None = None) -> UndoRules:
        """Add the rules inferred from an OpenAPI 3 or Swagger 2.0 document (dict, file path
        or URL)."""
        return self.add(*rules_from_openapi(document, base_url=base_url))

    def match(self, method: str, url: str) -> RuleMatch | None:
        method = method.upper()
        ordered = sorted(self.rules, key=lambda r: r.source != "registered")
        for rule in ordered:
            if rule.method == method:
                params = match_template(rule.url, url)
                if params is not None:
                    return RuleMatch(rule, params)
        return None
