"""Module-level actions and undos the integration tests give to agents (importable by any
process that rolls back)."""

from __future__ import annotations

import asyncio
import datetime
import enum
import threading
import uuid
from decimal import Decimal
from pathlib import Path

from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from pydantic import BaseModel

from goex_tools import reversible


def restore_text(path: str, old: str | None) -> None:
    if old is None:
        Path(path).unlink(missing_ok=True)
    else:
        Path(path).write_text(old)


def text_before(path: str, text: str = "") -> dict[str, object]:
    p = Path(path)
    return {"path": path, "old": p.read_text() if p.exists() else None}


@reversible(undo=restore_text, before=text_before)
def write_text(path: str, text: str) -> str:
    """Write `text` to the file at `path`, replacing what it held."""
    Path(path).write_text(text)
    return f"wrote {len(text)} characters to {path}"


@reversible(undo=restore_text, before=text_before)
def write_text_strictly(path: str, text: str) -> str:
    """Write `text` to `path`; refuses to create directories (fails if the parent is missing)."""
    Path(path).write_text(text)
    return f"wrote {path}"


def drop_last_line(path: str, **_: object) -> None:
    p = Path(path)
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:-1]))


@tool
def append_line(path: str, line: str) -> str:
    """Append one line to a text file."""
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}"


@tool
def read_text(path: str) -> str:
    """Read a text file."""
    return Path(path).read_text()


def add_line(path: str, line: str) -> str:
    """Append one line to a text file."""
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}"


def read_file(path: str) -> str:
    """Read a text file."""
    return Path(path).read_text()


async def write_text_async(path: str, text: str) -> str:
    """Write `text` to the file at `path` (a coroutine over the journaled `write_text`)."""
    await asyncio.sleep(0)
    result: str = write_text(path, text)
    return result


async def add_line_async(path: str, line: str) -> str:
    """Append one line to a text file (a coroutine)."""
    await asyncio.sleep(0)
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
    return f"appended to {path}"


@tool
async def append_line_async(path: str, line: str) -> str:
    """Append one line to a text file (an async-only tool)."""
    return await add_line_async(path, line)


@tool
def append_signed(path: str, line: str, runtime: ToolRuntime) -> str:
    """Append one line, signed with the id of the tool call (LangChain injects `runtime`)."""
    with Path(path).open("a") as fh:
        fh.write(f"{line} ({runtime.tool_call_id})\n")
    return f"appended to {path}"


slow_started = threading.Event()  # set by a slow tool once it runs
slow_may_finish = threading.Event()  # set by the test to let it finish


def slow_write(path: str, text: str) -> str:
    """Write a text file (slowly: it waits for the test)."""
    slow_started.set()
    assert slow_may_finish.wait(30)
    return write_text(path, text)


@tool
def slow_append(path: str, line: str) -> str:
    """Append one line to a text file (slowly: it waits for the test)."""
    slow_started.set()
    assert slow_may_finish.wait(30)
    return add_line(path, line)


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Owner(BaseModel):
    name: str
    team: str


def typed_line(
    day: datetime.date, amount: Decimal, ticket: uuid.UUID, priority: Priority, owner: Owner
) -> str:
    return f"{day.isoformat()} {amount} {ticket} {priority.value} {owner.name}@{owner.team}"


@tool
def log_typed(
    path: Path,
    day: datetime.date,
    amount: Decimal,
    ticket: uuid.UUID,
    priority: Priority,
    owner: Owner,
) -> str:
    """Append an entry to a ledger file: a day, an amount, a ticket, a priority, an owner."""
    with path.open("a") as fh:
        fh.write(typed_line(day, amount, ticket, priority, owner) + "\n")
    return f"logged to {path}"


def unlog_typed(
    path: Path,
    day: datetime.date,
    amount: Decimal,
    ticket: uuid.UUID,
    priority: Priority,
    owner: Owner,
) -> None:
    """Remove the entry `log_typed` appended; it gets back the types the tool was given."""
    assert isinstance(path, Path) and isinstance(day, datetime.date)
    assert isinstance(amount, Decimal) and isinstance(ticket, uuid.UUID)
    assert isinstance(priority, Priority) and isinstance(owner, Owner)
    lines = path.read_text().splitlines(keepends=True)
    assert lines[-1] == typed_line(day, amount, ticket, priority, owner) + "\n"
    path.write_text("".join(lines[:-1]))
