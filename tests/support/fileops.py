"""Module-level actions and undos for the spine tests (importable by a rollback process)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from goex_tools import TransientError, reversible


def remove_file(path: str, **_: object) -> None:
    Path(path).unlink()


def file_exists(path: str, **_: object) -> bool:
    return Path(path).exists()


@reversible(undo=remove_file, probe=file_exists)
def create_file(path: str, text: str = "") -> str:
    Path(path).write_text(text)
    return path


def read_state(path: str, text: str) -> dict[str, object]:
    p = Path(path)
    return {"path": path, "old": p.read_text() if p.exists() else None}


def restore_text(path: str, old: str | None) -> None:
    if old is None:
        Path(path).unlink(missing_ok=True)
    else:
        Path(path).write_text(old)


@reversible(undo=restore_text, before=read_state)
def overwrite(path: str, text: str) -> None:
    Path(path).write_text(text)


@reversible(irreversible=True)
def announce(message: str) -> str:
    return message


def flaky_remove(path: str, flag: str, **_: object) -> None:
    """Fails transiently while `flag` exists; counts its attempts in `flag`.count."""
    counter = Path(flag + ".count")
    counter.write_text(str(int(counter.read_text() if counter.exists() else "0") + 1))
    if Path(flag).exists():
        raise TransientError(f"service unavailable (flag {flag} present)")
    Path(path).unlink()


@reversible(undo=flaky_remove)
def create_with_flaky_undo(path: str, flag: str) -> None:
    Path(path).write_text("x")


def crash_after_effect(path: str, ready: str) -> None:
    """The effect happens, then the process hangs until killed (a crash before `applied`)."""
    Path(path).write_text("written")
    Path(ready).write_text(str(os.getpid()))
    time.sleep(3600)


def crash_before_effect(path: str, ready: str) -> None:
    Path(ready).write_text(str(os.getpid()))
    time.sleep(3600)


@reversible(undo=remove_file, probe=file_exists)
def create_then_hang(path: str, ready: str) -> None:
    crash_after_effect(path, ready)


@reversible(undo=remove_file, probe=file_exists)
def hang_then_create(path: str, ready: str) -> None:
    crash_before_effect(path, ready)


@reversible(undo=remove_file)
def create_then_hang_unprobed(path: str, ready: str) -> None:
    crash_after_effect(path, ready)


def dump(path: str) -> str:
    return json.dumps(sorted(os.listdir(path)))


@reversible(undo=remove_file, probe=file_exists)
async def create_file_later(path: str, text: str = "", fail: bool = False) -> str:
    """The async twin of `create_file`; with `fail`, raises after writing nothing."""
    import asyncio

    await asyncio.sleep(0)
    if fail:
        raise OSError("disk full")
    Path(path).write_text(text)
    return path


def hang_once(ready: str) -> None:
    """Signal `ready` and hang until killed, the first time only (`ready` exists after)."""
    if not Path(ready).exists():
        Path(ready).write_text(str(os.getpid()))
        time.sleep(3600)


def remove_hanging(path: str, ready: str, when: str, **_: object) -> None:
    """An idempotent undo that hangs (once) before or after removing `path`."""
    if when == "before":
        hang_once(ready)
    Path(path).unlink(missing_ok=True)
    if when == "after":
        hang_once(ready)


@reversible(undo=remove_hanging, probe=file_exists)
def create_with_hanging_undo(path: str, ready: str, when: str) -> None:
    Path(path).write_text("x")


def wait_for(go: str, ready: str) -> None:
    Path(ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@reversible(undo=remove_file, probe=file_exists)
def create_when_told(path: str, ready: str, go: str) -> None:
    """Signals `ready` mid-effect, finishes once `go` exists (an agent still running)."""
    wait_for(go, ready)
    Path(path).write_text("late")


def discard_file(path: str, **_: object) -> None:
    Path(path).unlink(missing_ok=True)


@reversible(undo=discard_file, probe=file_exists)
def make_file(path: str, text: str) -> None:
    """Create `path`, writing it in two halves (a kill may land between them)."""
    with open(path, "w") as fh:
        fh.write(text[: len(text) // 2])
        fh.flush()
        time.sleep(0.002)
        fh.write(text[len(text) // 2 :])


def text_state(path: str, text: str) -> dict[str, object]:
    p = Path(path)
    return {"path": path, "old": p.read_text() if p.exists() else None, "new": text}


def restore_old(path: str, old: str | None, **_: object) -> None:
    restore_text(path, old)


def text_is_new(path: str, old: str | None, new: str, **_: object) -> bool | None:
    """Whether `rewrite` happened: the new text is there (True), the old one (False), or
    something in between, which nobody can call either (None)."""
    p = Path(path)
    now = p.read_text() if p.exists() else None
    return True if now == new else False if now == old else None


@reversible(undo=restore_old, before=text_state, probe=text_is_new)
def rewrite(path: str, text: str) -> None:
    """Replace `path`'s text, in two halves (a kill may land between them)."""
    with open(path, "w") as fh:
        fh.write(text[: len(text) // 2])
        fh.flush()
        time.sleep(0.002)
        fh.write(text[len(text) // 2 :])


UNDO_HOOKS: list[Callable[[], None]] = []
"""Called (and cleared) by `remove_then_hook`: lets a test act in the middle of a rollback."""


def remove_then_hook(path: str, **_: object) -> None:
    Path(path).unlink(missing_ok=True)
    while UNDO_HOOKS:
        UNDO_HOOKS.pop()()


@reversible(undo=remove_then_hook, probe=file_exists)
def create_with_hooked_undo(path: str) -> None:
    Path(path).write_text("x")
