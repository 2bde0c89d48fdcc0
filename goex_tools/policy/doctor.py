"""`goex doctor`: the confinement actually achieved on this machine, found by trying it.

Every check does the real thing: each sandbox backend runs a command; network isolation is
shown by a sandboxed command failing to reach a TCP server this process opens on 127.0.0.1
(and, as a control, reaching it when network is allowed); the journal is opened and read;
the secret store's sources are read the way the HTTP domain reads them.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

__all__ = [
    "Check",
    "DoctorReport",
    "Status",
    "doctor",
    "sandbox_problem",
    "sandbox_works",
]

Status = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    """One check of `goex doctor`: its name, `ok`/`warn`/`fail`, and what it found."""

    name: str
    status: Status
    detail: str


class DoctorReport(BaseModel):
    """Every check `doctor()` ran; `ok` is False if any failed."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def status_of(self, name: str) -> Status:
        return next(c.status for c in self.checks if c.name == name)


@lru_cache(maxsize=8)
def sandbox_problem(backend: str) -> str | None:
    """None if `backend` works here, else why not (probed once per process)."""
    from goex_tools.sandbox import get_sandbox

    try:
        return get_sandbox(backend).problem()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def sandbox_works(backend: str) -> bool:
    """Whether the sandbox `backend` can run a command on this machine (`sandbox_problem`)."""
    return sandbox_problem(backend) is None


def doctor(
    journal_url: str | None = None,
    *,
    policy: str | Path | None = None,
    backends: tuple[str, ...] | None = None,
) -> DoctorReport:
    """Run every check; `policy` adds whether this machine can give what the file asks for;
    `backends` limits the sandbox backends tried (default: all). The first confining backend
    that works gives the unnamed confinement checks; every other gives its own, named
    "... (docker)"."""
    from goex_tools.sandbox import BACKENDS

    checks = [_sandbox_check(name) for name in backends or BACKENDS]
    working = [c.name.removeprefix("sandbox:") for c in checks if c.status == "ok"]
    confiners = [b for b in working if b != "none"]
    confining = confiners[0] if confiners else None
    checks.append(network_isolation(confining))
    checks.extend(confinement_checks(confining))
    for other in confiners[1:]:  # every other confining backend that works, named so
        found = [network_isolation(other), *confinement_checks(other)]
        checks += [c.model_copy(update={"name": f"{c.name} ({other})"}) for c in found]
    checks.append(journal_check(journal_url))
    checks.extend(secret_checks())
    if policy is not None:
        checks.append(policy_check(policy, confining))
    return DoctorReport(checks=checks)


def policy_check(path: str | Path, confining: str | None) -> Check:
    """Whether the policy file is valid, and whether its sandbox requirement can be met here."""
    from goex_tools.policy.source import PolicyError, load_policy

    try:
        config = load_policy(path).config
    except PolicyError as exc:
        return Check(name="policy", status="fail", detail="; ".join(exc.problems))
    if confining is None and config.fs.require_sandbox:
        detail = f"{path}: fs.require_sandbox is set and no sandbox works: run_shell is refused"
        return Check(name="policy", status="fail", detail=detail)
    if confining is None:
        detail = f"{path}: no sandbox works and fs.require_sandbox is off: commands run unconfined"
        return Check(name="policy", status="warn", detail=detail)
    return Check(name="policy", status="ok", detail=f"{path}: valid; sandbox {confining} available")


def _sandbox_check(backend: str) -> Check:
    from goex_tools.sandbox import DEFAULT_IMAGE

    problem = sandbox_problem(backend)
    if problem is None:
        what = {
            "none": "works (no confinement beyond the workspace overlay)",
            "docker": f"works (engine at {_engine_named()}, default image {DEFAULT_IMAGE})",
        }.get(backend, "works")
        return Check(name=f"sandbox:{backend}", status="ok", detail=what)
    status: Status = "fail" if backend == "bwrap" else "warn"
    return Check(name=f"sandbox:{backend}", status=status, detail=problem)


def _engine_named() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket"


def network_isolation(backend: str | None) -> Check:
    """A sandboxed command must not reach a server on this host; with network allowed, it must."""
    if backend is None:
        return Check(name="network isolation", status="fail", detail="no confining sandbox works")
    with _listener() as port:
        blocked = _try_connect(backend, port, network=False)
        allowed = _try_connect(backend, port, network=True)
    if blocked == 0:
        detail = f"a {backend} command without network reached 127.0.0.1:{port}"
        return Check(name="network isolation", status="fail", detail=detail)
    if allowed != 0:
        detail = f"the probe could not connect even with network allowed (exit {allowed})"
        return Check(name="network isolation", status="warn", detail=detail)
    return Check(
        name="network isolation",
        status="ok",
        detail=f"{backend}: no network unless allowed (a local TCP server was unreachable)",
    )


def confinement_checks(backend: str | None) -> list[Check]:
    """What a command in the sandbox sees and may use: sockets, its user, its limits."""
    from goex_tools.sandbox.confinement import probe

    if backend is None:
        return [Check(name="confinement", status="fail", detail="no confining sandbox works")]
    try:
        found = probe(backend)
    except Exception as exc:
        return [Check(name="confinement", status="fail", detail=f"{type(exc).__name__}: {exc}")]
    return [Check(name=name, status=status, detail=detail) for name, status, detail in found]


PROBE = "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 3)"


def _try_connect(backend: str, port: int, *, network: bool) -> int | None:
    from goex_tools.sandbox import Limits, get_sandbox
    from goex_tools.sandbox.overlay import make_layers, remove_layers

    with tempfile.TemporaryDirectory(prefix="goex-doctor-") as tmp:
        lower = Path(tmp) / "ws"
        lower.mkdir()
        layers = make_layers(lower, Path(tmp) / "scratch")
        try:
            # The real interpreter (its installation shown), not a venv link; in a container,
            # the image's own tools.
            python = os.path.realpath(sys.executable)
            command = f'{python} -c "{PROBE}" {port}'
            limits = Limits(timeout=20, network=network, show=[os.path.realpath(sys.base_prefix)])
            if backend == "docker":
                tcp = f"/dev/tcp/127.0.0.1/{port}"
                command = f'python3 -c "{PROBE}" {port} || bash -c "true >{tcp}"'
                limits = Limits(timeout=20, network=network)
            done = get_sandbox(backend).run(command, layers, limits)
        finally:
            remove_layers(layers)
    return done.exit_code


@contextmanager
def _listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def journal_check(url: str | None) -> Check:
    from goex_tools.journal import Journal, default_url

    target = url or default_url()
    try:
        journal = Journal(target)
        try:
            runs = len(journal.list_runs(limit=1000))
            shown = repr(journal)
        finally:
            journal.close()
    except Exception as exc:
        return Check(name="journal", status="fail", detail=f"{type(exc).__name__}: {exc}")
    return Check(name="journal", status="ok", detail=f"{shown} reachable, {runs} run(s)")


def secret_checks() -> list[Check]:
    from goex_tools.secrets import ENV_PREFIX, FileSource, SecretError, _keyring_backend

    names = sorted(k[len(ENV_PREFIX) :] for k in os.environ if k.startswith(ENV_PREFIX))
    names = [n for n in names if not n.endswith("_HOSTS")]
    checks = [
        Check(
            name="secrets:environment",
            status="ok",
            detail=f"{len(names)} secret(s): {', '.join(names)}" if names else "none set",
        )
    ]
    source = FileSource()
    try:
        source.lookup("goex-doctor-probe")
        state = "readable by its owner only" if source.path.exists() else "absent"
        checks.append(Check(name="secrets:file", status="ok", detail=f"{source.path}: {state}"))
    except SecretError as exc:
        checks.append(Check(name="secrets:file", status="fail", detail=str(exc)))
    backend = _keyring_backend()
    checks.append(
        Check(
            name="secrets:keyring",
            status="ok" if backend is not None else "warn",
            detail=type(backend).__name__ if backend is not None else "no usable keyring backend",
        )
    )
    return checks
