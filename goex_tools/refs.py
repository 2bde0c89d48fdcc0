"""References to importable functions ("package.module:qualname"), stored instead of closures."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from goex_tools.errors import InvalidCompensation


def ref_of(func: Callable[..., Any]) -> str:
    """The reference under which another process can import `func`."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise TypeError(
            f"{func!r} cannot be journaled as an undo: it must be a module-level function "
            f"(a lambda or nested function cannot be imported by the process that rolls back)"
        )
    if module == "__main__":
        module = _main_module_name()
    if module == "__main__":
        raise TypeError(
            f"{qualname} is defined in __main__; put it in an importable module so that "
            f"`goex rollback` can find it"
        )
    return f"{module}:{qualname}"


def _main_module_name() -> str:
    """`python -m pkg.mod` runs pkg.mod as __main__; its importable name is in __spec__."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None else "__main__"


def resolve(ref: str) -> Callable[..., Any]:
    """Import the function a reference names, with a clear error if it is gone."""
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname:
        raise InvalidCompensation(f"{ref!r} is not a function reference (module:qualname)")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidCompensation(f"cannot import {ref!r}: {exc}") from None
    if not callable(target):
        raise InvalidCompensation(f"{ref!r} is not callable")
    return target  # type: ignore[no-any-return]
