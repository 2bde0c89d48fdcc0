"""The compensation kind `http.revert`: one compensating call, guarded by the resource's state.

Its arguments keep secrets as placeholders; they are resolved again, for the same hosts,
when the undo runs. With a `check_url` the undo is safe to repeat and to race:
- the resource already is as it was before the step: nothing to do (a retried undo);
- it is no longer as the step left it: CompensationConflict (unless forced);
- the compensating call carries its own precondition: `If-Match` with the ETag just read,
  or `If-None-Match: *` when it re-creates what is absent (the agent's are never replayed);
- after the compensating call it must be as it was before, or the undo fails loudly.
Server-managed fields (`ignore_fields`, minus `keep_fields`) are compared by presence only;
write-only ones are never journaled nor compared. `children` are the items of
sub-collections a DELETE took with it: each is re-created after the resource, and the undo
fails (never reports success) unless every one is back. With `project`, states are read as
the fields it names only (what the undo restores); with `precondition_field`, the call's
body takes that field from the state just read (GitHub's blob `sha`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from goex_tools.domains.http.call import HttpCall
from goex_tools.domains.http.errors import HttpError
from goex_tools.domains.http.fields import project, rewrite
from goex_tools.domains.http.rule import TEMPLATE_PARAM
from goex_tools.domains.http.send import (
    DEFAULT_TIMEOUT,
    State,
    as_transient,
    check_status,
    client_for,
    read_state,
    request,
    unconditional,
)
from goex_tools.errors import (
    CompensationConflict,
    InvalidCompensation,
    TransientError,
)
from goex_tools.model import Compensation, JSONDict, Step
from goex_tools.redaction import redact
from goex_tools.registry import EffectState, UndoContext, registry
from goex_tools.secrets import default_store

KIND = "http.revert"


class UndoCall(BaseModel):
    """A REST call an undo sends (`json_body`: its JSON body, if any)."""

    method: str
    url: str
    json_body: Any = None


class ChildState(BaseModel):
    """An item of a sub-collection as read before the DELETE, and how to re-create it."""

    url: str
    state: State
    call: UndoCall | None = None  # None: it cannot be re-created (the undo then fails)
    children: list[ChildState] = Field(default_factory=list)


class RevertArgs(BaseModel):
    """A compensating call, the headers it and the state reads carry, and the states."""

    call: UndoCall
    headers: dict[str, str] = Field(default_factory=dict)
    check_url: str | None = None  # GET here reads the resource's state; None: no checks
    before: State | None = None  # the state to return to; None: unknown
    after: State | None = None  # the state the step left; None: unknown
    ignore_fields: list[str] = Field(default_factory=list)  # server-managed: presence only
    keep_fields: list[str] = Field(default_factory=list)  # ... except these, set by the call
    write_only: list[str] = Field(default_factory=list)  # never journaled nor compared
    children: list[ChildState] = Field(default_factory=list)
    unavailable: str | None = None  # why this step turned out not to be undoable
    timeout: float = DEFAULT_TIMEOUT  # seconds per request, as the tool that made the step
    project: dict[str, str] = Field(default_factory=dict)  # the fields states are read as
    precondition_field: str | None = None  # a body field taken from the state just read

    def read(self, client: Any, url: str, headers: dict[str, str], **options: Any) -> State:
        """GET `url` (see `read_state`), as `project` names its fields."""
        return view(read_state(client, url, headers, default_store(), **options), self.project)

    def seen(self, state: State) -> State:
        """`state` as the undo compares it: write-only values left out."""
        if not self.write_only or not state.exists:
            return state
        body = rewrite(state.body, self.write_only, drop=True)
        return State(exists=True, body=body, etag=state.etag)

    def same(self, state: State, other: State) -> bool:
        return self.seen(state).same_as(self.seen(other), self.ignore_fields, self.keep_fields)


def view(state: State, fields: dict[str, str]) -> State:
    """`state` as the fields `fields` names (see `fields.project`); its ETag kept."""
    if not fields or not state.exists:
        return state
    return State(exists=True, body=project(state.body, fields), etag=state.etag)


def unavailable(template: Compensation, reason: str) -> Compensation:
    """The undo of a step found, while running, to be impossible: rollback reports `reason`.

    (A compensation journaled as pending cannot be removed again, so it is marked instead.)
    """
    args = RevertArgs.model_validate(template.args).model_copy(update={"unavailable": reason})
    return Compensation(
        kind=KIND, args=args.model_dump(mode="json"), description=f"cannot be undone: {reason}"
    )


def revert(
    call: UndoCall,
    *,
    headers: dict[str, str],
    check_url: str | None,
    before: State | None,
    after: State | None = None,
    ignore_fields: list[str] | None = None,
    description: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    **more: Any,
) -> Compensation:
    """The compensation `http.revert` for `call`; `more`: the other RevertArgs fields."""
    args = RevertArgs(
        call=call,
        headers=unconditional(headers),
        check_url=check_url,
        before=before,
        after=after,
        ignore_fields=ignore_fields or [],
        timeout=timeout,
        **more,
    )
    return Compensation(
        kind=KIND,
        args=args.model_dump(mode="json"),
        description=description or f"{call.method} {call.url}",
    )


def _unresolved(args: RevertArgs) -> str | None:
    for url in (args.call.url, args.check_url or ""):
        found = TEMPLATE_PARAM.search(url)
        if found:
            return found.group(0)
    return None


def _probe(step: Step) -> EffectState:
    assert step.compensation is not None
    args = RevertArgs.model_validate(step.compensation.args)
    if args.check_url is None or args.unavailable or _unresolved(args):
        return EffectState.UNKNOWN
    current = args.read(client_for(args.timeout), args.check_url, args.headers)
    at_before = args.before is not None and args.same(current, args.before)
    at_after = args.after is not None and args.same(current, args.after)
    if at_after and not at_before:
        return EffectState.HAPPENED
    if at_before and not at_after:
        return EffectState.NOT_HAPPENED
    return EffectState.UNKNOWN


def _preview(steps: list[Step]) -> dict[str, str]:
    """The conflicts undoing `steps` in this order (newest first) would meet: each resource
    is read once, then taken as each undo leaves it (its step's before-state); a resource in
    neither state a step recorded when that step's undo comes is a conflict, as the undo
    itself judges it. Steps without a state to check (no `check_url`) are not checked, nor
    are the sub-collection items a DELETE took with it."""
    holds: dict[str, State | None] = {}  # check_url -> its state then (None: unknown)
    found: dict[str, str] = {}
    for step in steps:
        assert step.compensation is not None
        args = RevertArgs.model_validate(step.compensation.args)
        url = args.check_url
        if url is None or args.unavailable or _unresolved(args):
            continue
        if url not in holds:
            headers = unconditional(args.headers)
            holds[url] = args.read(
                client_for(args.timeout), url, headers, hidden_is_absent=_hidden(args)
            )
        now = holds[url]
        if now is not None:
            conflict = _conflict(args, now)
            if conflict is not None:
                found[step.id] = conflict
        holds[url] = args.before
    return found


def _hidden(args: RevertArgs) -> bool:
    """Whether a 403 reads as absent: a service that hides what does not exist is read so
    where the undo re-creates under `If-None-Match: *` or has just deleted (what the step
    created)."""
    left_absent = args.after is not None and not args.after.exists
    same_url = args.call.url == args.check_url
    return same_url and (
        args.call.method == "DELETE" or (left_absent and args.call.method == "PUT")
    )


def _conflict(args: RevertArgs, current: State) -> str | None:
    """Why undoing would overwrite a later change: the resource is neither as the step left
    it nor as it was before; None if not."""
    if args.before is not None and args.same(current, args.before):
        return None
    if args.after is None or args.same(current, args.after):
        return None
    return str(
        redact(
            f"{args.check_url} changed since the step: it is now {current.short()}, the step "
            f"left it {args.after.short()}"
        )
    )


@registry.register(KIND, args_model=RevertArgs, probe=_probe, preview=_preview)
def _revert(raw: JSONDict, ctx: UndoContext) -> None:
    args = RevertArgs.model_validate(raw)
    if args.unavailable:
        raise HttpError(f"this step cannot be undone: {args.unavailable}")
    missing = _unresolved(args)
    if missing:
        raise InvalidCompensation(
            f"the undo {args.call.method} {args.call.url} still has {missing} unfilled: "
            f"the step never learnt the id of what it created"
        )
    try:
        _run(client_for(args.timeout), args, ctx.force)
    except HttpError as exc:
        raise as_transient(exc) from None


def _run(client: Any, args: RevertArgs, force: bool) -> None:
    headers = unconditional(args.headers)  # journals made before they were left out
    current: State | None = None
    hidden = _hidden(args)
    same_url = args.call.url == args.check_url
    if args.check_url is not None:
        current = args.read(client, args.check_url, headers, hidden_is_absent=hidden)
        if args.before is not None and args.same(current, args.before):
            _restore_children(client, args, args.children, force)
            return  # already as it was: an earlier attempt got through
        conflict = _conflict(args, current)
        if conflict is not None and not force:
            raise CompensationConflict(conflict)
    _send(client, args, args.call, headers, current, same_url)
    if args.check_url is not None and args.before is not None:
        restored = args.read(client, args.check_url, headers, hidden_is_absent=hidden)
        if not args.same(restored, args.before):
            raise HttpError(
                redact(
                    f"{args.call.method} {args.call.url} was accepted, but {args.check_url} is "
                    f"now {restored.short()}, not {args.before.short()} as before the step"
                )
            )
    _restore_children(client, args, args.children, force)


def undo_request(
    args: RevertArgs,
    undo: UndoCall,
    headers: dict[str, str],
    current: State | None,
    same_resource: bool,
) -> HttpCall:
    """The compensating call as it is sent, with its own precondition on the state just read
    (`current`): If-Match with its ETag, or If-None-Match: * where it re-creates what is
    absent (when `undo` addresses the resource read), and `precondition_field` from it."""
    own = dict(headers)
    body = undo.json_body
    if same_resource and current is not None and current.etag is not None:
        own["If-Match"] = current.etag
    elif same_resource and current is not None and not current.exists and undo.method == "PUT":
        own["If-None-Match"] = "*"
    field = args.precondition_field
    if field and isinstance(body, dict):  # the state read now, never a journaled value
        body = {k: v for k, v in body.items() if k != field}
    if field and current is not None and current.exists and isinstance(current.body, dict):
        body = {**(body or {}), field: current.body.get(field)}
    return HttpCall(method=undo.method, url=undo.url, headers=own, body=body)


def _send(
    client: Any,
    args: RevertArgs,
    undo: UndoCall,
    headers: dict[str, str],
    current: State | None,
    same_resource: bool,
) -> None:
    """Send the compensating call (see `undo_request`)."""
    call = undo_request(args, undo, headers, current, same_resource)
    response = request(client, call, default_store())
    if response.status_code == 412:  # changed between the read and the write: read again
        raise TransientError(f"{call.method} {call.url}: the precondition failed (412)")
    check_status(call, response)


def _restore_children(
    client: Any, args: RevertArgs, children: list[ChildState], force: bool
) -> None:
    """Re-create the items a DELETE took with it, parents first; fail unless all are back."""
    headers = unconditional(args.headers)
    for child in children:
        guarded = child.call is not None and child.call.method == "PUT"
        current = args.read(client, child.url, headers, hidden_is_absent=guarded)
        if not args.same(current, child.state):
            if current.exists and not force:
                raise CompensationConflict(
                    redact(
                        f"{child.url} exists again, as {current.short()}, not as it was "
                        f"before the step ({child.state.short()})"
                    )
                )
            if child.call is None:
                raise HttpError(f"{child.url} was deleted with its parent and cannot be re-created")
            _send(client, args, child.call, headers, current, child.call.url == child.url)
            restored = args.read(client, child.url, headers)
            if not args.same(restored, child.state):
                raise HttpError(
                    redact(
                        f"{child.call.method} {child.call.url} was accepted, but {child.url} is "
                        f"now {restored.short()}, not {child.state.short()} as before the step"
                    )
                )
        _restore_children(client, args, child.children, force)
