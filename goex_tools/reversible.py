"""Making any Python function reversible: `@reversible(undo=...)` and `with action(...)`.

The undo is journaled as the compensation kind `python.call`: a reference to an importable
function plus JSON keyword arguments, so `goex rollback` can call it from another process.

    @reversible(undo=delete_file)             # undo receives the call's arguments
    def create_file(path: str, text: str) -> None: ...

    @reversible(undo=restore_text, before=read_text)   # undo receives what `before` returned
    def overwrite(path: str, text: str) -> None: ...
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from pydantic import BaseModel, ConfigDict, field_validator, validate_call
from pydantic_core import PydanticSerializationError, to_jsonable_python

from goex_tools.errors import InvalidCompensation
from goex_tools.model import Compensation, JSONDict, Proposal, Reversibility, Step
from goex_tools.refs import ref_of, resolve
from goex_tools.registry import EffectState, UndoContext, registry
from goex_tools.runtime import StepHandle, current_run, execute, run, summarize

P = ParamSpec("P")
R = TypeVar("R")
KIND = "python.call"


class CallArgs(BaseModel):
    function: str
    kwargs: JSONDict = {}
    probe: str | None = None
    typed: bool = False
    """The call's arguments held values JSON has no type for (a date, Decimal, UUID, path,
    enum, pydantic model): journaled in pydantic's JSON form, they are validated back
    against the annotations of the undo (and probe) before it is called."""

    @field_validator("function", "probe")
    @classmethod
    def _importable(cls, ref: str | None) -> str | None:
        if ref is not None:
            try:
                resolve(ref)
            except InvalidCompensation as exc:
                raise ValueError(str(exc)) from None
        return ref


def _call_probe(step: Step) -> EffectState:
    assert step.compensation is not None
    args = CallArgs.model_validate(step.compensation.args)
    if args.probe is None:
        return EffectState.UNKNOWN
    answer = _invoke(args.probe, args.kwargs, typed=args.typed)
    if isinstance(answer, EffectState):
        return answer
    if answer is None:
        return EffectState.UNKNOWN
    return EffectState.HAPPENED if answer else EffectState.NOT_HAPPENED


@registry.register(KIND, args_model=CallArgs, probe=_call_probe)
def _call(args: JSONDict, ctx: UndoContext) -> Any:
    parsed = CallArgs.model_validate(args)
    return _invoke(parsed.function, parsed.kwargs, typed=parsed.typed)


def _invoke(ref: str, kwargs: JSONDict, *, typed: bool) -> Any:
    function = resolve(ref)
    if typed:
        function = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(function)
    return function(**kwargs)


def call_compensation(
    undo: Callable[..., Any] | str,
    kwargs: JSONDict,
    *,
    probe: Callable[..., Any] | None = None,
) -> Compensation:
    """A compensation that calls `undo(**kwargs)`; `undo` may also be a registered kind.

    Values pydantic can serialise (dates, Decimals, UUIDs, paths, enums, models) are
    journaled in their JSON form and handed back to `undo` as the types it declares.

    Raises InvalidCompensation for a value with no JSON form (a connection, a lock).
    """
    kwargs, typed = _as_json(kwargs)
    if isinstance(undo, str):
        return Compensation(kind=undo, args=kwargs, description=f"{undo}({_short(kwargs)})")
    args = CallArgs(
        function=ref_of(undo), kwargs=kwargs, probe=ref_of(probe) if probe else None, typed=typed
    )
    return Compensation(
        kind=KIND,
        args=args.model_dump(),
        description=f"{undo.__qualname__}({_short(kwargs)})",
    )


def reversible(
    func: Callable[P, R] | None = None,
    *,
    undo: Callable[..., Any] | str | None = None,
    before: Callable[..., JSONDict] | None = None,
    after: Callable[[Any, JSONDict], JSONDict] | None = None,
    probe: Callable[..., Any] | None = None,
    irreversible: bool = False,
    semantic: bool = False,
    tool: str | None = None,
    domain: str = "python",
) -> Any:
    """Journal every call of the decorated function together with its undo.

    - `undo`: an importable function (or a registered compensation kind) that reverses a call.
    - `before(*args, **kwargs)`: captures state before the call; its dict becomes the undo's
      keyword arguments. Without it the undo receives the call's own arguments.
    - `after(result, undo_kwargs)`: refines the undo's arguments from the result.
    - `probe(**undo_kwargs)`: after a crash, says whether the call's effect happened
      (True/False, or None when it cannot tell); used by `goex recover`.
    - `irreversible=True`: no undo exists; the call is journaled (and refusable) as such.
    - `semantic=True`: the undo only does the closest thing (archives what it cannot delete);
      journaled as `semantic`, which policy may treat like irreversible. Without it the undo
      is taken to bring the prior state back exactly.
    """
    if undo is None and not irreversible:
        raise TypeError("reversible() needs undo=..., or irreversible=True for a one-way action")
    if undo is not None and irreversible:
        raise TypeError("an action cannot have an undo and be irreversible")
    if semantic and undo is None:
        raise TypeError("semantic=True labels an undo: give undo=...")

    for function in (undo, probe):
        if callable(function):
            ref_of(function)  # fail at definition, not at the first call

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        name = tool or fn.__name__

        def propose(args: Any, kwargs: Any) -> Proposal:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            inputs = dict(bound.arguments)
            compensation = None
            if undo is not None:
                undo_kwargs = before(*args, **kwargs) if before else inputs
                compensation = call_compensation(undo, undo_kwargs, probe=probe)
            return Proposal(
                tool=name,
                domain=domain,
                inputs=_jsonable_inputs(inputs),
                reversibility=_label(undo, semantic),
                compensation=compensation,
            )

        def refine(handle: StepHandle, result: Any) -> None:
            if after is not None and undo is not None and handle.compensation is not None:
                refined = after(result, dict(_undo_kwargs(handle.compensation)))
                handle.set_compensation(call_compensation(undo, refined, probe=probe))

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                # The step stays pending until the coroutine has run, not merely been created.
                with _journaled(propose(args, kwargs)) as handle:
                    result = await fn(*args, **kwargs)
                    refine(handle, result)
                    handle.output = summarize(result)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            def effect(handle: StepHandle) -> R:
                result = fn(*args, **kwargs)
                refine(handle, result)
                return result

            return execute(propose(args, kwargs), effect)

        return wrapper

    return decorate(func) if func is not None else decorate


@contextmanager
def action(
    tool: str,
    *,
    undo: Callable[..., Any] | str | None,
    undo_kwargs: JSONDict | None = None,
    inputs: JSONDict | None = None,
    probe: Callable[..., Any] | None = None,
    domain: str = "python",
    semantic: bool = False,
) -> Iterator[StepHandle]:
    """Journal the block as one step: `with action("send", undo=unsend, undo_kwargs={...}):`.

    `undo=None` marks the block irreversible; `semantic=True` labels its undo as one that
    only does the closest thing (see `reversible`). Inside, `handle.set_compensation(...)` refines
    the undo once the block knows more (e.g. an id it created).
    """
    compensation = call_compensation(undo, undo_kwargs or {}, probe=probe) if undo else None
    proposal = Proposal(
        tool=tool,
        domain=domain,
        inputs=_jsonable_inputs(inputs or {}),
        reversibility=_label(undo, semantic),
        compensation=compensation,
    )
    with _journaled(proposal) as handle:
        yield handle


@contextmanager
def _journaled(proposal: Proposal) -> Iterator[StepHandle]:
    """The step lifecycle around a block, in the current run or in a run of its own."""
    ctx = current_run()
    if ctx is None:
        with run(proposal.tool) as adhoc, _block(adhoc.begin(proposal)) as handle:
            yield handle
        return
    with _block(ctx.begin(proposal)) as handle:
        yield handle


@contextmanager
def _block(handle: StepHandle) -> Iterator[StepHandle]:
    from goex_tools.runtime import parent_step

    try:
        with parent_step(handle.id):
            yield handle
    except Exception as exc:
        handle.fail(exc)
        raise
    handle.finish(handle.output)


def _undo_kwargs(compensation: Compensation) -> JSONDict:
    if compensation.kind == KIND:
        return CallArgs.model_validate(compensation.args).kwargs
    return dict(compensation.args)


def _as_json(kwargs: JSONDict) -> tuple[JSONDict, bool]:
    """`kwargs` as JSON data, and whether pydantic had to convert a value to get there."""
    try:
        json.dumps(kwargs)
        return kwargs, False
    except (TypeError, ValueError):
        pass
    for name, value in kwargs.items():
        try:
            json.dumps(to_jsonable_python(value))
        except (PydanticSerializationError, TypeError, ValueError):
            raise InvalidCompensation(
                f"undo arguments must be JSON data: {name!r} is a {type(value).__name__}, "
                f"which has none; give before= a function that returns the undo's arguments "
                f"as JSON data (an id, a path, a copy of the state to restore)"
            ) from None
    return to_jsonable_python(kwargs), True


def _jsonable_inputs(inputs: JSONDict) -> JSONDict:
    return {
        k: json.loads(json.dumps(to_jsonable_python(v, fallback=repr))) for k, v in inputs.items()
    }


def _short(kwargs: JSONDict, limit: int = 120) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(undo: object, semantic: bool) -> Reversibility:
    if undo is None:
        return Reversibility.IRREVERSIBLE
    return Reversibility.SEMANTIC if semantic else Reversibility.EXACT
