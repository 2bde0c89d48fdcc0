"""One command in a fresh container: the engine side of the docker backend.

The container's first process only waits (root, with no capabilities: the command, another
user, cannot signal it), and ends the container a little past the command's time limit
should goex be gone by then; the command runs in the container through an `exec`, as the
sandbox user. Keeping the container alive past the command lets goex freeze every process
the command left, read the counters of the container's cgroup (which the engine deletes with
the container), then remove it: nothing the command started survives it. The output is read
from the exec stream as it arrives and capped as for the other backends, and the engine keeps
no log of it (log driver `none`), so a chatty command fills neither memory nor disk.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from goex_tools.sandbox.base import Execution, Limits, SandboxUnavailable
from goex_tools.sandbox.process import DRAIN_SECONDS, Capped, outputs
from goex_tools.sandbox.resources import Cgroup, exceeded

OWNER_LABEL = "goex.owner"  # host:pid:start of the goex process that made the container
API_TIMEOUT = 60.0  # seconds an engine call may take (never the command: it streams)
POLL_SECONDS = 0.25  # how often a command whose output stays open is checked for its end
# The first process waits, then ends the container (every process in it dies with it) at
# the command's time limit plus GRACE: the end, should goex die and not remove it. An image
# without `sleep` gets no such end: it waits on its stdin, which the engine keeps open.
WAIT = 'sleep "$1" || read -r _'
GRACE = 5  # seconds past the time limit; goex has frozen and removed it long before

_clients: dict[tuple[int, str], Any] = {}
_clients_lock = threading.Lock()
_swept: set[str] = set()


def engine() -> Any:
    """A client of the engine DOCKER_HOST (or the default socket) names, one per process."""
    import docker

    key = (os.getpid(), os.environ.get("DOCKER_HOST", ""))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = docker.from_env(timeout=int(API_TIMEOUT)).api
            _clients[key] = client
        return client


def owner() -> str:
    """This process, as the label on its containers names it (see `sweep`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def sweep(api: Any) -> list[str]:
    """Remove the containers goex processes on this host left when they were killed (once
    per process and engine). Returns their ids."""
    if api.base_url in _swept:
        return []
    _swept.add(api.base_url)
    removed = []
    host = socket.gethostname()
    for found in api.containers(all=True, filters={"label": OWNER_LABEL}):
        name, _, rest = (found.get("Labels") or {}).get(OWNER_LABEL, "").partition(":")
        pid, _, start = rest.partition(":")
        if name != host or not pid.isdigit() or _start_time(int(pid)) == start:
            continue  # another machine's, or its goex is alive
        with contextlib.suppress(Exception):
            api.remove_container(found["Id"], force=True)
            removed.append(found["Id"])
    return removed


def _start_time(pid: int) -> str:
    """When process `pid` started (clock ticks since boot), or "" if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def create(
    api: Any, image: str, limits: Limits, binds: list[tuple[str, str, bool]], tmpfs: list[str]
) -> str:
    """A container of `image` set to `limits`, its first process waiting; returns its id.

    - `binds`: (host path, path inside, writable), as structured mounts (a path is never
      parsed out of a `src:dst:mode` string);
    - `tmpfs`: paths given an empty private tmpfs (besides /tmp, /run, /var/tmp and /sys).
    """
    from docker.types import Mount

    fresh = {"/tmp": "rw,nosuid,nodev,mode=1777", "/var/tmp": "rw,nosuid,nodev,mode=1777"}
    fresh |= {"/run": "rw,nosuid,nodev,mode=755", "/sys": "ro,nosuid,nodev,noexec,mode=555"}
    fresh |= {path: "ro,nosuid,nodev,mode=555" for path in tmpfs}
    mounts = [
        Mount(inside, source, type="bind", read_only=not rw, propagation="rprivate")
        for source, inside, rw in binds
    ]
    host = api.create_host_config(
        mounts=mounts,
        tmpfs=fresh,
        read_only=True,
        network_mode="host" if limits.network else "none",
        ipc_mode="private",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=limits.memory,
        memswap_limit=limits.memory,  # no swap beyond it
        pids_limit=limits.processes + 1,  # and the first process
        log_config={"type": "none", "config": {}},
    )
    made = api.create_container(
        image,
        ["sh", "-c", WAIT, "goex-wait", str(int(limits.timeout + 0.999) + GRACE)],
        user="0:0",
        stdin_open=True,
        network_disabled=not limits.network,
        labels={OWNER_LABEL: owner()},
        host_config=host,
    )
    return str(made["Id"])


def run(
    api: Any,
    container: str,
    argv: list[str],
    limits: Limits,
    *,
    user: str,
    workdir: str,
    env: dict[str, str],
) -> Execution:
    """Start `container`, run `argv` in it, then freeze it and read what it used; the
    caller removes it (`remove`) whatever happens."""
    start = time.monotonic()
    api.start(container)
    made = api.exec_create(container, argv, user=user, workdir=workdir, environment=env)
    out, err = Capped(limits.output_limit), Capped(limits.output_limit)
    stream = api.exec_start(made["Id"], stream=True, demux=True)
    reader = threading.Thread(target=_read, args=(stream, out, err), daemon=True)
    reader.start()
    deadline = start + limits.timeout
    timed_out = not _wait(api, made["Id"], reader, deadline)
    code = None if timed_out else api.exec_inspect(made["Id"]).get("ExitCode")
    with contextlib.suppress(Exception):  # a container already gone cannot be frozen
        api.pause(container)  # every process stops where it is: the counters are final
    cgroup = _cgroup(api, container)
    cpu = cgroup.cpu_seconds() if cgroup is not None else 0.0
    seconds = time.monotonic() - start
    run = Execution(
        exit_code=code, stdout="", stderr="", timed_out=timed_out, seconds=seconds, cpu_seconds=cpu
    )
    over = exceeded(run, limits, cgroup)
    remove(api, container)  # ends the stream, if a leftover process still held it
    reader.join(DRAIN_SECONDS)  # what it read up to the freeze
    with contextlib.suppress(Exception):
        stream.close()
    return run.model_copy(update={**outputs(out, err), "exceeded": over})


def remove(api: Any, container: str) -> None:
    """Kill every process of `container` and remove it (also when it is paused)."""
    try:
        api.remove_container(container, force=True)
    except Exception as exc:
        if "No such container" in str(exc) or "no such container" in str(exc):
            return
        raise SandboxUnavailable(
            f"the container {container[:12]} could not be removed ({exc}); its processes may "
            f"still run: remove it with `docker rm -f {container[:12]}`"
        ) from None


def _read(stream: Iterator[tuple[bytes | None, bytes | None]], out: Capped, err: Capped) -> None:
    with contextlib.suppress(Exception):  # the stream ends with an error once it is removed
        for stdout, stderr in stream:
            if stdout:
                out.add(stdout)
            if stderr:
                err.add(stderr)


def _wait(api: Any, exec_id: str, reader: threading.Thread, deadline: float) -> bool:
    """Until the command ends (True) or the deadline passes (False). Its output stream ends
    with it on podman; an engine that keeps it open while a leftover process holds it is
    asked whether the command still runs every POLL_SECONDS."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        reader.join(min(remaining, POLL_SECONDS))
        if not reader.is_alive():
            return True
        if not api.exec_inspect(exec_id).get("Running", False):
            return True


def _cgroup(api: Any, container: str) -> Cgroup | None:
    """The container's cgroup, where this process can read it (a local engine)."""
    try:
        pid = int(api.inspect_container(container)["State"]["Pid"])
    except Exception:
        return None
    return Cgroup.of_process(pid, must_name=container) if pid > 0 else None
