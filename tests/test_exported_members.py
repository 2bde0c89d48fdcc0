"""The public surface, pinned: each package's sorted `__all__` is exactly its public names
(httpx's `test_exported_members.py`), every goex module a front door or integration imports
from declares `__all__` and is only used through it, and every exported class and function
says what it is in a docstring.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "goex_tools",
    "goex_tools.domains.fs",
    "goex_tools.domains.http",
    "goex_tools.domains.sql",
    "goex_tools.mcp",
    "goex_tools.policy",
    "goex_tools.sandbox",
    "goex_tools.ui",
    "langchain_goex",
    "llama_index.tools.goex",
]
INCLUDED_PRIVATE_MEMBERS = {"__version__"}
# The front doors (CLI, notebook, MCP server, review page) and the integrations: what they
# import from the rest of goex is the surface other modules declare.
FRONT_DOORS = [
    ROOT / "goex_tools/cli.py",
    ROOT / "goex_tools/notebook.py",
    *sorted((ROOT / "goex_tools/mcp").glob("*.py")),
    *sorted((ROOT / "goex_tools/ui").glob("*.py")),
    *sorted((ROOT / "integrations/langchain-goex/langchain_goex").glob("*.py")),
    *sorted((ROOT / "integrations/llama-index-tools-goex/llama_index/tools/goex").glob("*.py")),
]


def export_order(name: str) -> tuple[int, str]:
    """isort's order for `__all__`: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def public_names(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in INCLUDED_PRIVATE_MEMBERS)
        and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    ]


def undocumented(module: ModuleType) -> list[str]:
    """Exported classes and functions without a docstring of their own."""
    missing = []
    for name in module.__all__:
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants and type aliases are documented where they are assigned
        doc = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
        generated = f"{value.__name__}("  # what dataclass and NamedTuple write when there is none
        if not doc or not doc.strip() or doc.startswith(generated):
            missing.append(f"{module.__name__}.{name}")
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_exported_members_are_the_public_names_sorted(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == sorted(public_names(module), key=export_order)


@pytest.mark.parametrize("package", PACKAGES)
def test_exported_members_each_have_a_docstring(package: str) -> None:
    assert undocumented(importlib.import_module(package)) == []


def _goex_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each `from goex_tools... import name` in `path`, outside its own
    package."""
    own = (
        ".".join(path.relative_to(ROOT / "goex_tools").parent.parts)
        if "goex_tools" in path.parts
        else ""
    )
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("goex_tools"):
            module = node.module or ""
            if own and module.startswith(f"goex_tools.{own}"):
                continue
            found += [(module, alias.name) for alias in node.names]
    return found


def _is_submodule(package: str, name: str) -> bool:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        return False
    return importlib.util.find_spec(f"{package}.{name}") is not None


def test_front_doors_import_only_declared_names_from_goex() -> None:
    outside = []
    for path in FRONT_DOORS:
        for module_name, name in _goex_imports(path):
            if _is_submodule(module_name, name):
                continue
            module = importlib.import_module(module_name)
            if name not in getattr(module, "__all__", ()):
                outside.append(f"{path.relative_to(ROOT)}: {module_name}.{name}")
    assert outside == []


def test_modules_the_front_doors_use_have_sorted_documented_exports() -> None:
    used = {
        module
        for path in FRONT_DOORS
        for module, name in _goex_imports(path)
        if not _is_submodule(module, name)
    }
    problems = []
    for module_name in sorted(used):
        module = importlib.import_module(module_name)
        exported = list(getattr(module, "__all__", []))
        if exported != sorted(exported, key=export_order):
            problems.append(f"{module_name}.__all__ is not sorted")
        problems += [f"{name} has no docstring" for name in undocumented(module)]
    assert problems == []
