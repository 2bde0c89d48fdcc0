"""One undo rule: which REST call is undone by which, and how its URL template matches.

A rule matches a method and a URL template (`https://api.example.com/items/{id}`) and says
what kind of action the call is:
- create: undone by deleting what it created, found at `item_url` with the id the response
  carried in `id_field`;
- update: undone by writing back (`restore_method`) the state read just before;
- delete: undone by writing the state read just before back (`recreate_method` on
  `recreate_url`, by default PUT on the deleted item's own URL), and the items of its
  sub-collections (`children`: the service may delete them with it) after it;
- irreversible: nothing can undo it (sending an email), so policy can refuse it up front.

Each undo is `exact` (the prior state comes back) or `semantic` (the closest thing the
service allows: a create undone by closing what cannot be deleted). A service's own shapes
(GitHub's) are described by a rule's `project`, `state_url`, `restore_url`, `undo_body`,
`carry`, `state_query`, `precondition_field`, `close_with` and `irreversible_if`; a template
parameter written `{+name}` (RFC 6570 reserved expansion) matches a value holding `/` (a
file path, a git ref), and is filled percent-encoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, Field, field_validator

Action = Literal["create", "update", "delete", "irreversible"]
Source = Literal["registered", "openapi"]
TEMPLATE_PARAM = re.compile(r"\{\+?([A-Za-z_][A-Za-z0-9_]*)\}")
SPANNING_PARAM = re.compile(r"\{\+([A-Za-z_][A-Za-z0-9_]*)\}")
Exactness = Literal["exact", "semantic"]


class ChildRule(BaseModel):
    """A collection under a resource (`<resource URL><suffix>`), whose items deleting the
    resource may delete too: listed and read before, re-created after it."""

    suffix: str  # `/records`: the collection's URL after the resource's
    items_field: str | None = None  # where a listing holds its items (`data`); None: an array
    id_field: str = "id"  # an item's id in the listing; its URL is `<collection>/<id>`
    recreate_method: Literal["PUT", "POST"] | None = "PUT"  # None: no way to re-create one
    children: list[ChildRule] = Field(default_factory=list)


class UndoRule(BaseModel):
    """How calls matching `method` + `url` are undone.

    `id_field`: where a create's response holds the new id, a dotted path (`data.id`); empty:
    the `item_url` parameter's name or `id`, at the top or in a one-level envelope, then the
    Location header. `ignore_fields` and `write_only`: path patterns (see `fields`) of
    server-managed and write-only properties. `can_patch`: PATCH may restore the resource
    (used when a PUT would need a write-only value).

    For services whose resources do not read back as they are written (GitHub):
    - `undo`: `exact` or `semantic` (the label the call is journaled with);
    - `project`: the fields compared and written back, each a body field -> where the read
      representation holds it (`labels.*.name`: the names of the label objects); without
      it the whole representation is;
    - `state_url`: where the state is read (`.../git/ref/{+ref}`), if not the call's URL
      (or, for a create, `item_url`); `state_query`: query parameters of that read taken
      from the call's body (`{"ref": "branch"}`);
    - `restore_url`: where an update's or a delete's undo is sent, if not the call's URL;
    - `undo_body`: fields every undo's body carries (`{"message": ...}`); `carry`: fields
      copied from the call's body into the undo's (`branch`); `precondition_field`: a field
      the undo's body takes from the state read just before it is sent (GitHub's blob `sha`,
      as an `If-Match`);
    - `close_with`: a create the service cannot undo by DELETE is undone by PATCHing its
      `item_url` with this body (`{"state": "closed"}`); always `semantic`;
    - `irreversible_if`: body values that make the call irreversible (`{"force": true}`);
      `covers`: the body fields whose effect the undo restores: a call setting any other is
      irreversible (its effect would not come back);
    - `restorable_if`: values the state read before must have for it to be written back
      (`{"encoding": "base64"}`: GitHub gives no content for files over 1 MB);
    - `id_prefix`: stripped from the created id before it fills `item_url` (`refs/`).
    """

    action: Action
    method: str
    url: str
    item_url: str | None = None
    id_field: str = "id"
    restore_method: Literal["PUT", "PATCH"] = "PUT"
    can_patch: bool = False
    recreate_method: Literal["PUT", "POST"] = "PUT"
    recreate_url: str | None = None
    ignore_fields: list[str] = Field(default_factory=list)
    write_only: list[str] = Field(default_factory=list)
    children: list[ChildRule] = Field(default_factory=list)
    source: Source = "registered"
    undo: Exactness = "exact"
    project: dict[str, str] = Field(default_factory=dict)
    state_url: str | None = None
    state_query: dict[str, str] = Field(default_factory=dict)
    restore_url: str | None = None
    undo_body: dict[str, Any] = Field(default_factory=dict)
    carry: list[str] = Field(default_factory=list)
    precondition_field: str | None = None
    close_with: dict[str, Any] | None = None
    irreversible_if: dict[str, Any] = Field(default_factory=dict)
    covers: list[str] | None = None
    restorable_if: dict[str, Any] = Field(default_factory=dict)
    id_prefix: str = ""

    @property
    def exactness(self) -> Exactness:
        return "semantic" if self.close_with is not None else self.undo

    @field_validator("method")
    @classmethod
    def _upper(cls, method: str) -> str:
        return method.upper()

    @field_validator("url", "item_url", "recreate_url", "state_url", "restore_url")
    @classmethod
    def _template(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{url!r} is not an absolute http(s) URL template")
        return url


@dataclass(frozen=True)
class RuleMatch:
    rule: UndoRule
    params: dict[str, str]

    def fill(self, template: str, **extra: str) -> str:
        """`template` with the matched path parameters (and `extra`) put in; a `{+name}`
        one percent-encoded whole, so that it stays one segment."""
        values = {**self.params, **extra}

        def value(m: re.Match[str]) -> str:
            found = values.get(m.group(1))
            if found is None:
                return m.group(0)
            return quote(unquote(found), safe="") if m.group(0).startswith("{+") else found

        return TEMPLATE_PARAM.sub(value, template)

    def new_id_param(self) -> str | None:
        """The parameter of `item_url` that the created resource's id fills."""
        names = TEMPLATE_PARAM.findall(self.rule.item_url or "")
        unbound = [n for n in names if n not in self.params]
        return unbound[-1] if unbound else None


def match_template(template: str, url: str) -> dict[str, str] | None:
    """The path parameters if `url` (query ignored) fits `template`, else None."""
    want, have = urlsplit(template), urlsplit(url)
    if (want.scheme, want.netloc.lower()) != (have.scheme, have.netloc.lower()):
        return None
    want_parts = want.path.rstrip("/").split("/")
    have_parts = have.path.rstrip("/").split("/")
    spanning = SPANNING_PARAM.fullmatch(want_parts[-1])
    if spanning is not None and len(have_parts) > len(want_parts):  # `{+name}` takes the rest
        tail = have_parts[len(want_parts) - 1 :]
        if not all(tail):
            return None
        have_parts = [*have_parts[: len(want_parts) - 1], "/".join(tail)]
    if len(want_parts) != len(have_parts):
        return None
    params: dict[str, str] = {}
    for pattern, segment in zip(want_parts, have_parts, strict=True):
        name = TEMPLATE_PARAM.fullmatch(pattern)
        if name is not None and segment:
            params[name.group(1)] = segment
        elif pattern != segment:
            return None
    return params
