"""Compensation kinds and the handlers that carry them out.

A compensation in the journal is only a kind name and JSON arguments. The registry maps the
kind to code, so that any process (the CLI, a notebook) can run an undo long after the agent
that journaled it has exited. Built-in domains are imported on first use of their prefix
(`fs.`, `sql.`, `http.`, `python.`); other packages add theirs through the entry-point group
`goex_tools.compensations` or by calling `registry.register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from goex_tools.errors import InvalidCompensation
from goex_tools.model import Compensation, JSONDict, Step

if TYPE_CHECKING:
    from goex_tools.journal import Journal

ENTRY_POINT_GROUP = "goex_tools.compensations"
BUILTIN_MODULES = {
    "python": "goex_tools.reversible",
    "fs": "goex_tools.domains.fs",
    "sql": "goex_tools.domains.sql",
    "http": "goex_tools.domains.http",
    "llm": "goex_tools.policy.undo",
}


class EffectState(StrEnum):
    """What a domain can say, after a crash, about a step left pending."""

    HAPPENED = "happened"
    NOT_HAPPENED = "not_happened"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class UndoContext:
    """What a compensation handler is told besides its arguments."""

    step: Step
    journal: Journal
    force: bool = False  # overwrite changes made by others since the step (conflicts)


CompensateFn = Callable[[JSONDict, UndoContext], Any]
ProbeFn = Callable[[Step], EffectState]
PreviewFn = Callable[[list[Step]], dict[str, str]]
"""Given steps of one kind in the order their undos would run (newest first), the conflict
each undo would meet, by step id: read from the world and the steps' own records, nothing
changed. Lets a rollback of several steps stop before undoing anything (`goex_tools.threads`)."""


@dataclass(frozen=True)
class Handler:
    kind: str
    compensate: CompensateFn
    probe: ProbeFn | None = None
    args_model: type[BaseModel] | None = None
    preview: PreviewFn | None = None

    def validate(self, args: JSONDict) -> None:
        if self.args_model is None:
            return
        try:
            self.args_model.model_validate(args)
        except ValidationError as exc:
            raise InvalidCompensation(
                f"arguments of compensation {self.kind!r} are invalid: {_first_error(exc)}"
            ) from None


class Registry:
    """Kind name -> Handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._loaded_modules: set[str] = set()

    def register(
        self,
        kind: str,
        *,
        probe: ProbeFn | None = None,
        args_model: type[BaseModel] | None = None,
        preview: PreviewFn | None = None,
    ) -> Callable[[CompensateFn], CompensateFn]:
        """Decorator: `@registry.register("fs.restore", args_model=RestoreArgs)`."""

        def decorate(compensate: CompensateFn) -> CompensateFn:
            self._handlers[kind] = Handler(kind, compensate, probe, args_model, preview)
            return compensate

        return decorate

    def get(self, kind: str) -> Handler:
        handler = self._handlers.get(kind) or self._load(kind)
        if handler is None:
            raise InvalidCompensation(
                f"unknown compensation kind {kind!r}: no handler is registered for it "
                f"(import the module that registers it, or declare it under the "
                f"{ENTRY_POINT_GROUP!r} entry-point group)"
            )
        return handler

    def validate(self, compensation: Compensation) -> Handler:
        handler = self.get(compensation.kind)
        handler.validate(compensation.args)
        return handler

    def _load(self, kind: str) -> Handler | None:
        prefix = kind.split(".", 1)[0]
        module = BUILTIN_MODULES.get(prefix)
        if module and module not in self._loaded_modules:
            self._loaded_modules.add(module)
            importlib.import_module(module)
        if kind not in self._handlers:
            for entry in entry_points(group=ENTRY_POINT_GROUP):
                if entry.value not in self._loaded_modules:
                    self._loaded_modules.add(entry.value)
                    importlib.import_module(entry.value)
        return self._handlers.get(kind)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(arguments)"
    return f"{where}: {err['msg']}"


registry = Registry()
"""The process-wide registry used by the runtime, rollback and recovery."""
