"""What the undo of an update or a delete needs, read just before the call is sent.

The resource's state; for a DELETE also every item of its sub-collections (the service may
delete them with it), each with the call that re-creates it; and, where the undo turns out
impossible, why (a write-only value it would need, a state holding a secret, sub-items that
cannot be listed or re-created). Server-managed fields are left out of what is written back,
write-only ones out of everything journaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from goex_tools.domains.http.errors import HttpError, HttpStatusError
from goex_tools.domains.http.fields import SERVER_MANAGED, WRITE_ONLY, found, get, rewrite, split
from goex_tools.domains.http.rule import ChildRule, UndoRule
from goex_tools.domains.http.send import State, read_listing, read_state
from goex_tools.domains.http.undo import ChildState, UndoCall, view
from goex_tools.model import JSONDict
from goex_tools.redaction import redact
from goex_tools.secrets import SecretStore

MAX_CHILDREN = 1000  # sub-items journaled for one DELETE; more makes it not undoable
HOLDS_SECRET = (
    "the state read before holds a secret value, which the journal masks, "
    "so it cannot be written back exactly"
)


@dataclass
class Fields:
    """The field patterns that apply to one rule's resources."""

    ignore: list[str]  # server-managed: not written back, compared by presence
    write_only: list[str]  # never journaled nor compared; needed to re-create

    @classmethod
    def of(cls, rule: UndoRule) -> Fields:
        return cls([*rule.ignore_fields, *SERVER_MANAGED], [*rule.write_only, *WRITE_ONLY])

    def journaled(self, state: State) -> State:
        """`state` without its write-only values: what may be journaled."""
        if not state.exists:
            return state
        return State(exists=True, body=rewrite(state.body, self.write_only, drop=True))

    def restore_body(self, state: State, keep: list[str]) -> Any:
        """What writes `state` back: without server-managed (but `keep`) or write-only fields."""
        body = rewrite(state.body, self.ignore, drop=True, keep=keep)
        return rewrite(body, self.write_only, drop=True)


@dataclass
class Before:
    """The state a call's undo returns to; `state` None: unreadable (403) before a PUT."""

    url: str
    state: State | None
    children: list[ChildState] = field(default_factory=list)
    problem: str | None = None  # why the call cannot be undone, found before sending it


def read_before(
    client: httpx.Client,
    store: SecretStore,
    url: str,
    headers: dict[str, str],
    action: str,
    rule: UndoRule,
    put: bool,
) -> Before:
    """Read what undoing `action` (update or delete) on `url` needs."""
    fields = Fields.of(rule)
    try:
        raw = read_state(client, url, headers, store)
    except HttpStatusError as exc:
        if exc.status_code == 403 and put and action == "update":
            return Before(url, None)  # maybe absent, maybe hidden: the answer will tell
        raise
    state = view(raw, rule.project)
    before = Before(url, state)
    if not state.exists:
        return before
    needs = found(state.body, fields.write_only)
    unfit = _unfit(raw.body, url, rule)
    if unfit is not None:
        before.problem = unfit
    elif needs and action == "delete":
        before.problem = (
            f"re-creating {url} would need {', '.join(needs)}, which the service gives back "
            f"only as it stores it (write-only), not as it was set"
        )
    elif needs and rule.restore_method == "PUT" and not rule.can_patch:
        before.problem = (
            f"writing {url} back by PUT would need {', '.join(needs)}, which the service "
            f"gives back only as it stores it (write-only), and it takes no PATCH"
        )
    elif not journalable(fields.journaled(state)):
        before.problem = HOLDS_SECRET
    elif action == "delete" and rule.children:
        budget = [MAX_CHILDREN]
        try:
            before.children = _children(client, store, url, headers, rule.children, fields, budget)
        except _NoUndo as exc:
            before.problem = str(exc)
    return before


def _unfit(raw: Any, url: str, rule: UndoRule) -> str | None:
    """Why the representation read at `url` cannot be written back (a value of
    `restorable_if` it lacks), or None."""
    for name, wanted in rule.restorable_if.items():
        have = raw.get(name) if isinstance(raw, dict) else None
        if have != wanted:
            return (
                f"{url} reads with {name}={have!r}, not {wanted!r}: what it holds cannot be "
                f"written back from that read"
            )
    return None


class _NoUndo(Exception):
    pass


def _children(
    client: httpx.Client,
    store: SecretStore,
    parent: str,
    headers: dict[str, str],
    rules: list[ChildRule],
    fields: Fields,
    budget: list[int],
) -> list[ChildState]:
    """Every item under `parent`, read with its own sub-items, parents first."""
    states: list[ChildState] = []
    for rule in rules:
        listing = parent.rstrip("/") + rule.suffix
        try:
            entries = read_listing(client, listing, headers, store, rule.items_field, budget[0])
        except HttpError as exc:
            raise _NoUndo(
                f"what deleting {parent} deletes under it cannot be read: {exc}"
            ) from None
        if entries is None:
            raise _NoUndo(
                f"{listing} holds more than {MAX_CHILDREN} items, which deleting {parent} may "
                f"delete too; goex journals at most {MAX_CHILDREN}"
            )
        if entries and rule.recreate_method is None:
            raise _NoUndo(
                f"{listing} holds {len(entries)} items, which deleting {parent} may delete "
                f"too, and the API gives no way to re-create them"
            )
        for entry in entries:
            child_id = entry.get(rule.id_field) if isinstance(entry, dict) else None
            if child_id is None:
                raise _NoUndo(f"an item listed at {listing} has no `{rule.id_field}`")
            url = f"{listing}/{quote(str(child_id), safe='')}"
            state = read_state(client, url, headers, store)
            if not state.exists:
                continue  # gone since it was listed
            budget[0] -= 1
            needs = found(state.body, fields.write_only)
            if needs:
                raise _NoUndo(f"re-creating {url} would need {', '.join(needs)} (write-only)")
            kept = fields.journaled(state)
            if not journalable(kept):
                raise _NoUndo(f"{url}: {HOLDS_SECRET}")
            body = fields.restore_body(state, [])
            target = url if rule.recreate_method == "PUT" else listing
            states.append(
                ChildState(
                    url=url,
                    state=kept,
                    call=UndoCall(method=rule.recreate_method or "PUT", url=target, json_body=body),
                    children=_children(client, store, url, headers, rule.children, fields, budget),
                )
            )
    return states


def find_id(body: Any, id_field: str, param: str | None) -> tuple[str, Any] | None:
    """Where `body` holds a resource's id, and the id: at `id_field` (a dotted path), or,
    with none given, the parameter's name or `id` at the top or in a one-level envelope."""
    if id_field:
        try:
            value = get(body, split(id_field))
        except KeyError:
            return None
        return (id_field, value) if isinstance(value, (str, int)) else None
    if not isinstance(body, dict):
        return None
    names = [n for n in (param, "id") if n]
    for name in names:
        if isinstance(body.get(name), (str, int)) and not isinstance(body[name], bool):
            return name, body[name]
    for key, value in body.items():
        for name in names:
            if isinstance(value, dict) and isinstance(value.get(name), (str, int)):
                return f"{key}.{name}", value[name]
    return None


def journalable(state: State) -> bool:
    data: JSONDict = state.model_dump(mode="json")
    return bool(redact(data) == data)
