"""The compensation kind `http.revert`: one compensating call, guarded by the resource's state.

Its arguments keep secrets as placeholders; they are resolved again, for the same hosts,
when the undo runs. With a `check_url` the undo is safe to repeat and to race:
- the resource already is as it was before the step: nothing to do (a retried undo);
- it is no longer as the step left it: CompensationConflict (unless forced);
- after the compensating call it must be as it was before, or the undo fails loudly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from goex_tools.domains.http.call import HttpCall
from goex_tools.domains.http.rules import TEMPLATE_PARAM
from goex_tools.domains.http.send import (
    DEFAULT_TIMEOUT,
    HttpError,
    State,
    as_transient,
    check_status,
    client_for,
    read_state,
    request,
)
from goex_tools.errors import CompensationConflict, GoexError, InvalidCompensation
from goex_tools.model import Compensation, JSONDict, Step
from goex_tools.redaction import redact
from goex_tools.registry import EffectState, UndoContext, registry
from goex_tools.secrets import default_store

KIND = "http.revert"


class UndoCall(BaseModel):
    method: str
    url: str
    json_body: Any = None


class RevertArgs(BaseModel):
    """A compensating call, the headers it and the state reads carry, and the states."""

    call: UndoCall
    headers: dict[str, str] = Field(default_factory=dict)
    check_url: str | None = None  # GET here reads the resource's state; None: no checks
    before: State | None = None  # the state to return to; None: unknown
    after: State | None = None  # the state the step left; None: unknown
    ignore_fields: list[str] = Field(default_factory=list)
    unavailable: str | None = None  # why this step turned out not to be undoable
    timeout: float = DEFAULT_TIMEOUT  # seconds per request, as the tool that made the step


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
) -> Compensation:
    args = RevertArgs(
        call=call,
        headers=headers,
        check_url=check_url,
        before=before,
        after=after,
        ignore_fields=ignore_fields or [],
        timeout=timeout,
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
    current = read_state(client_for(args.timeout), args.check_url, args.headers, default_store())
    at_before = args.before is not None and current.same_as(args.before, args.ignore_fields)
    at_after = args.after is not None and current.same_as(args.after, args.ignore_fields)
    if at_after and not at_before:
        return EffectState.HAPPENED
    if at_before and not at_after:
        return EffectState.NOT_HAPPENED
    return EffectState.UNKNOWN


@registry.register(KIND, args_model=RevertArgs, probe=_probe)
def _revert(raw: JSONDict, ctx: UndoContext) -> None:
    args = RevertArgs.model_validate(raw)
    if args.unavailable:
        raise GoexError(f"this step cannot be undone: {args.unavailable}")
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
    store = default_store()
    if args.check_url is not None:
        current = read_state(client, args.check_url, args.headers, store)
        if args.before is not None and current.same_as(args.before, args.ignore_fields):
            return  # already as it was: an earlier attempt got through
        if (
            args.after is not None
            and not force
            and not current.same_as(args.after, args.ignore_fields)
        ):
            raise CompensationConflict(
                redact(
                    f"{args.check_url} changed since the step: it is now {current.short()}, "
                    f"the step left it {args.after.short()}"
                )
            )
    call = HttpCall(
        method=args.call.method, url=args.call.url, headers=args.headers, body=args.call.json_body
    )
    check_status(call, request(client, call, store))
    if args.check_url is not None and args.before is not None:
        restored = read_state(client, args.check_url, args.headers, store)
        if not restored.same_as(args.before, args.ignore_fields):
            raise HttpError(
                redact(
                    f"{call.method} {call.url} was accepted, but {args.check_url} is now "
                    f"{restored.short()}, not {args.before.short()} as before the step"
                )
            )
