"""No sandbox, for trusted commands: only the workspace is versioned, nothing else is guarded.

The command still runs over the overlay (so its workspace changes are captured and undoable),
but it may write anywhere else on the machine and use the network; the step says so.
"""

from __future__ import annotations

import os

from goex_tools.sandbox.base import Execution, Layers, Limits
from goex_tools.sandbox.overlay import (
    as_caller,
    namespaced,
    overlay_problem,
    require_mounted,
)
from goex_tools.sandbox.process import clean_env, run_capped

_BIND_THEN_RUN = 'mount --bind "$1" "$2" && cd "$2" && shift 2 && exec "$@"'


class NoSandbox:
    """Runs a command as goex's own user with no confinement (trusted use): only the overlay
    keeps its changes from the workspace until goex applies them."""

    name = "none"

    def problem(self) -> str | None:
        return overlay_problem()

    def notes(self, limits: Limits) -> list[str]:
        return [
            "sandbox none (trusted use): the command could write outside the workspace and "
            "use the network; only its changes inside the workspace can be undone (processes "
            "it left running were killed when it ended)"
        ]

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        inner = ["sh", "-c", _BIND_THEN_RUN, "goex-none", str(layers.merged), str(layers.lower)]
        argv = namespaced(layers, [*inner, *as_caller(), "sh", "-c", command])
        env = clean_env(os.environ.get("HOME", "/tmp"))
        return require_mounted(layers, run_capped(argv, limits, env=env))
