"""Docker: an optional backend, used when a Docker engine answers.

The engine cannot see a mount made in our private namespace, so the overlay is mounted on
the host (root only) and its merged directory is bind-mounted into the container at the
workspace's own path.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from goex_tools.sandbox.base import Execution, Layers, Limits, SandboxUnavailable
from goex_tools.sandbox.overlay import mount_options
from goex_tools.sandbox.process import capped_text, clean_env

DEFAULT_IMAGE = "debian:bookworm-slim"


class DockerSandbox:
    name = "docker"

    def __init__(self, image: str = DEFAULT_IMAGE) -> None:
        self.image = image

    def problem(self) -> str | None:
        try:
            import docker

            docker.from_env(timeout=5).ping()
        except Exception as exc:
            return f"no Docker engine answers ({type(exc).__name__}: {exc})"
        if os.geteuid() != 0:
            return "the docker backend mounts the workspace overlay on the host, which needs root"
        return None

    def notes(self, limits: Limits) -> list[str]:
        network = "network allowed: effects outside the workspace cannot be undone"
        return [f"sandbox docker ({self.image}); " + (network if limits.network else "no network")]

    def run(self, command: str, layers: Layers, limits: Limits) -> Execution:
        reason = self.problem()
        if reason is not None:
            raise SandboxUnavailable(reason)
        import docker

        client = docker.from_env()
        mount = ["mount", "-t", "overlay", "goex-overlay", "-o", mount_options(layers)]
        subprocess.run([*mount, str(layers.merged)], check=True, capture_output=True)
        try:
            return self._run_container(client, command, layers, limits)
        finally:
            subprocess.run(["umount", "-l", str(layers.merged)], capture_output=True)

    def _run_container(
        self, client: Any, command: str, layers: Layers, limits: Limits
    ) -> Execution:
        workspace = str(layers.lower)
        container = client.containers.run(
            self.image,
            ["sh", "-c", command],
            volumes={str(layers.merged): {"bind": workspace, "mode": "rw"}},
            working_dir=workspace,
            network_disabled=not limits.network,
            environment=clean_env("/tmp"),
            detach=True,
        )
        timed_out = False
        try:
            exit_code: int | None = container.wait(timeout=limits.timeout)["StatusCode"]
        except Exception:  # the engine's read timed out: the command ran past its limit
            timed_out, exit_code = True, None
            container.kill()
        try:
            out = container.logs(stdout=True, stderr=False)
            err = container.logs(stdout=False, stderr=True)
        finally:
            container.remove(force=True)
        return Execution(
            exit_code=exit_code,
            stdout=capped_text(out, limits.output_limit),
            stderr=capped_text(err, limits.output_limit),
            timed_out=timed_out,
            stdout_truncated=len(out) > limits.output_limit,
            stderr_truncated=len(err) > limits.output_limit,
        )
