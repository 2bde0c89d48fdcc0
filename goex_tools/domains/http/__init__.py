"""REST API actions with compensating calls, symbolic credentials and redaction.

    rules = UndoRules().create("https://api.example.com/items",
                               item_url="https://api.example.com/items/{id}")
    rules.add_openapi("https://api.example.com/openapi.json")
    api = HttpTool(rules)
    api.request("POST", "https://api.example.com/items",
                headers={"Authorization": "Bearer {{secret:example}}"}, json={"name": "x"})

Importing this package registers the compensation kind `http.revert`.
"""

from goex_tools.domains.http.call import HttpCall, HttpResult
from goex_tools.domains.http.errors import (
    HttpError,
    HttpStatusError,
    HttpUnreachable,
    InvalidHttpCall,
    OpenAPIError,
)
from goex_tools.domains.http.openapi import rules_from_openapi
from goex_tools.domains.http.rules import ChildRule, UndoRule, UndoRules
from goex_tools.domains.http.send import State
from goex_tools.domains.http.tool import (
    TOOL,
    HttpTool,
    UndoProposer,
    UndoVerifier,
)
from goex_tools.domains.http.undo import KIND, RevertArgs, UndoCall, revert

__all__ = [
    "KIND",
    "TOOL",
    "ChildRule",
    "HttpCall",
    "HttpError",
    "HttpResult",
    "HttpStatusError",
    "HttpTool",
    "HttpUnreachable",
    "InvalidHttpCall",
    "OpenAPIError",
    "RevertArgs",
    "State",
    "UndoCall",
    "UndoProposer",
    "UndoRule",
    "UndoRules",
    "UndoVerifier",
    "revert",
    "rules_from_openapi",
]
