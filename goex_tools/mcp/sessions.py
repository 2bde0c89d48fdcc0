"""Which goex run each MCP tool call is journaled in (framework-free: no MCP SDK here).

A server journals through one `RunTracker`: an MCP session's run is a tracker root, each tool
call a container step under it (the domain journals the effect as its child), exactly as a
LangChain agent invocation and its tool calls are. The run a call goes to is, first match:

1. the id the client gives in the call's `_meta` (`goex/run_id`);
2. the id the client gives in the HTTP header `Goex-Run-Id` (clients that open a session per
   call, such as LlamaIndex's `BasicMCPClient`, keep one run this way);
3. the server's `--run-id` (every session of the process joins that run);
4. the session's own run, created at its first tool call.

A run ends (`completed`) when the last session using it ends. Once a session rolls its own
run back through the review tools, that run is closed for good: the session's next calls go
to a new run (its metadata names the one it follows). A run rolled back from elsewhere
(`goex rollback --live`) stays closed: the session's calls to it are refused, as documented.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from goex_tools.errors import InvalidArgument
from goex_tools.journal import Journal
from goex_tools.model import JSONDict, StepStatus, new_id
from goex_tools.owner import owner_tag
from goex_tools.runtime import Gate
from goex_tools.tracker import RunTracker, ToolKind, call_in_thread

__all__ = ["RUN_ID_HEADER", "RUN_ID_META", "STEP_ID_META", "Call", "Session", "SessionRuns"]

RUN_ID_META = "goex/run_id"  # in a call's `_meta`: the run to journal it in; in a result's too
STEP_ID_META = "goex/step_id"  # in a result's `_meta`: the call's step
RUN_ID_HEADER = "goex-run-id"
MAX_RUN_ID = 64  # the journal's id columns


@dataclass
class Call:
    """One tool call journaled as a step: its run and step ids, and its outcome."""

    run_id: str
    step_id: str
    result: Any = None
    error: Exception | None = None

    @property
    def meta(self) -> JSONDict:
        return {RUN_ID_META: self.run_id, STEP_ID_META: self.step_id}


class SessionRuns:
    """The runs of every session of one server, journaled through one tracker."""

    def __init__(
        self,
        journal: Journal,
        *,
        gate: Gate | None = None,
        run_name: str = "",
        run_id: str | None = None,
    ) -> None:
        self.journal = journal
        self.tracker = RunTracker(journal=journal, gate=gate, framework="mcp")
        self.run_name = run_name
        self.run_id = _checked(run_id) if run_id is not None else None
        self._users: dict[str, int] = {}  # run id -> sessions using it
        self._lock = threading.Lock()

    def open(self, client: str = "") -> Session:
        """A new MCP session (call `Session.close` when it ends)."""
        return Session(self, client)

    def _join(self, run_id: str, name: str, metadata: JSONDict) -> None:
        with self._lock:
            users = self._users.get(run_id, 0)
            self._users[run_id] = users + 1
            if users:
                return
        self.tracker.start(run_id, None, name=name, metadata=metadata)

    def _leave(self, run_id: str) -> None:
        with self._lock:
            users = self._users.get(run_id, 0) - 1
            if users > 0:
                self._users[run_id] = users
                return
            self._users.pop(run_id, None)
        self.tracker.end(run_id)


@dataclass
class Session:
    """One MCP session: the runs its calls went to, newest last."""

    server: SessionRuns
    client: str
    own: str = field(default_factory=new_id)  # the session's own run, until rolled back
    runs: list[str] = field(default_factory=list)
    follows: str | None = field(default=None, init=False)  # the own run rolled back before
    closed: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.server.run_id is not None:
            self.own = self.server.run_id

    @property
    def current(self) -> str:
        """The run this session's calls go to unless the client names one."""
        return self.own

    def run_for(self, given: str | None) -> str:
        """The run a call goes to (`given`: the client's id, if any); joined on first use."""
        with self._lock:
            return self._join(given)

    def _join(self, given: str | None) -> str:
        run_id = _checked(given) if given else self.own
        if run_id not in self.runs:
            name = self.server.run_name or f"mcp session ({self.client or 'client'})"
            metadata: JSONDict = {"client": self.client}
            if given:
                metadata["given_by"] = "client"
            elif self.follows is not None:
                metadata["follows"] = self.follows
            self.server._join(run_id, name, metadata)
            self.runs.append(run_id)
        return run_id

    def owns(self, run_id: str) -> bool:
        """True for a run this session's calls went to."""
        return run_id in self.runs

    def in_flight(self, run_id: str) -> list[str]:
        """Tool calls of this process still running in the run (their steps are pending)."""
        me = owner_tag()
        return [
            s.tool
            for s in self.server.journal.steps(run_id)
            if s.parent_id is None and s.status is StepStatus.PENDING and s.owner == me
        ]

    def rolled_back(self, run_id: str) -> None:
        """`run_id` was rolled back (it is closed now): the session's later calls go to a new
        run of its own, unless the client names one."""
        if run_id == self.own:
            self.follows = self.own
            self.own = new_id()

    async def call(
        self, tool: str, fn: Callable[..., Any], arguments: JSONDict, given: str | None
    ) -> Call:
        """Journal `fn(**arguments)` as one step of the call's run, run in a worker thread.

        A call that cannot be journaled (a closed run, a bad run id) does not run: its error
        is in the returned `Call`. A cancelled call's step is journaled when its thread
        returns, with what the thread did.
        """
        tracker = self.server.tracker
        key = new_id()
        call = Call(run_id=given or self.own, step_id=key)

        def start() -> None:
            call.run_id = self.run_for(given)
            tracker.start(key, call.run_id, name=tool, tool=ToolKind.JOURNALED, inputs=arguments)

        def work() -> Any:
            with tracker.scope(key):
                return fn(**arguments)

        try:
            with anyio.CancelScope(shield=True):  # a call journaled is a call ended
                await anyio.to_thread.run_sync(start)
        except Exception as exc:
            call.error = exc
            return call
        try:
            call.result = await call_in_thread(tracker, key, work)
        except Exception as exc:
            call.error = exc
        except BaseException as exc:  # cancelled: journaled when the thread returns
            tracker.end(key, error=exc)
            raise
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: tracker.end(key, call.result, error=call.error))
        return call

    def close(self) -> None:
        """The session ended: so do the runs no other session uses."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for run_id in self.runs:
            self.server._leave(run_id)


def _checked(run_id: str) -> str:
    if not run_id or len(run_id) > MAX_RUN_ID or not run_id.isprintable():
        raise InvalidArgument(
            f"a run id is 1 to {MAX_RUN_ID} printable characters, not {run_id[:80]!r}"
        )
    return run_id
