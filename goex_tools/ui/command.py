"""`goex ui`: serve the review page on 127.0.0.1 and print its URL, with a fresh token.

Example:

    goex ui --journal postgresql+psycopg://review@db/goex --port 8800

prints `goex review page at http://127.0.0.1:8800/?token=...`; open that URL. Agents whose
policy asks through `WebApprover` wait on this page for an answer.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tomllib
from typing import Any

from goex_tools.errors import GoexError

__all__ = ["add_command", "cmd_ui"]

EXIT_OK = 0
HOST = "127.0.0.1"
_DESCRIPTION = __doc__.split("\n", 2)[2] if __doc__ else ""


def add_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `goex ui` to the CLI's subcommands."""
    p = sub.add_parser(
        "ui",
        parents=[common],
        help="serve the review page: runs, diffs, undo and approvals in a browser",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8800, help="port on 127.0.0.1 (0: any free one)")
    p.set_defaults(handler=cmd_ui, access="write")


def cmd_ui(args: argparse.Namespace, journal: Any) -> int:
    """Serve until the process is stopped (Ctrl-C)."""
    try:
        import uvicorn

        from goex_tools.ui.app import create_app
        from goex_tools.ui.guard import Keys
    except ImportError as exc:
        if not (exc.name or "").startswith(("starlette", "jinja2", "uvicorn", "multipart")):
            raise
        raise GoexError(
            f"goex ui needs the web parts ({exc.name} is missing): pip install 'goex-tools[ui]'"
        ) from None
    try:
        sock = socket.create_server((HOST, args.port))
    except OSError as exc:
        raise GoexError(f"goex ui cannot listen on {HOST}:{args.port}: {exc.strerror}") from None
    port = sock.getsockname()[1]
    for warning in register_known_secrets():
        print(f"goex ui: {warning}", file=sys.stderr, flush=True)
    keys = Keys()
    hosts = [f"{HOST}:{port}", f"localhost:{port}"]
    app = create_app(journal, keys, hosts)
    print(f"goex review page at http://{HOST}:{port}/?token={keys.token}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    print("goex review page stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def register_known_secrets() -> list[str]:
    """Mask every secret this machine's store can list (environment, secrets file), so that
    a value that reached a file or a row the page shows appears as [REDACTED]; the journal
    itself holds none. Returns warnings for secrets that could not be read."""
    from goex_tools.secrets import ENV_PREFIX, FileSource, SecretError, default_store

    names = {
        key[len(ENV_PREFIX) :]
        for key in os.environ
        if key.startswith(ENV_PREFIX) and not key.endswith("_HOSTS")
    }
    warnings = []
    path = FileSource().path
    try:
        if path.exists():
            names.update(name for name, entry in tomllib.loads(path.read_text()).items())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        warnings.append(f"secrets in {path} are not masked on the page: {exc}")
    for name in sorted(names):
        try:
            default_store().get(name)  # registers its value with the redactor
        except SecretError as exc:
            warnings.append(f"secret {name!r} is not masked on the page: {exc}")
    return warnings
