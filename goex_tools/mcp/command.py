"""`goex mcp`: the command that serves goex's tools to MCP clients (the SDK loads on use).

Example, in an MCP client's configuration (stdio):

    goex mcp --workspace ~/project --database sqlite:///app.db --policy policy.yaml

or over streamable HTTP, for clients that connect to a URL:

    goex mcp --transport http --port 8765 --workspace ~/project
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from goex_tools.errors import GoexError, InvalidArgument

if TYPE_CHECKING:
    from goex_tools.domains.http import HttpTool, UndoRules
    from goex_tools.policy import Approver

__all__ = ["add_command", "cmd_mcp", "http_tool", "load_approver"]

EXIT_OK = 0


def add_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `goex mcp` to the CLI's subcommands."""
    p = sub.add_parser(
        "mcp",
        parents=[common],
        help="serve the reversible tools to MCP clients (stdio or streamable HTTP)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workspace", metavar="DIR", help="offer the file tools (and run_shell) here")
    p.add_argument(
        "--store", metavar="DIR", help="where file versions are kept, outside the workspace"
    )
    p.add_argument(
        "--sandbox", choices=("bwrap", "docker", "none"), help="run_shell's sandbox (bwrap)"
    )
    p.add_argument("--no-shell", action="store_true", help="do not offer run_shell")
    p.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="NAME_OR_URL",
        help="offer run_sql on this database (a URL, or a name set by GOEX_SQL_URL_<NAME>); "
        "repeat for more, each tool then named after its database",
    )
    p.add_argument(
        "--http",
        action="append",
        default=[],
        metavar="RULES",
        help="offer http_request with these undo rules: a YAML or JSON file of rules, an "
        "OpenAPI document (file or URL), `github`, or `none` (every write irreversible); "
        "repeatable",
    )
    p.add_argument("--policy", metavar="FILE", help="the policy every effect must pass")
    p.add_argument(
        "--approver",
        metavar="MODULE:NAME",
        help="who answers a policy's `ask` when the client offers no elicitation: an "
        "importable callable, or `console` (with --transport http only)",
    )
    p.add_argument("--run-name", default="", help="the name of each session's run")
    p.add_argument("--run-id", help="journal every session in this one run")
    p.add_argument("--prefix", default="", help="put before every domain tool's name")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="with --transport http (127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="with --transport http; 0: any free")
    p.set_defaults(handler=cmd_mcp, access="none")


_DESCRIPTION = __doc__.split("\n", 2)[2] if __doc__ else ""


def cmd_mcp(args: argparse.Namespace, _journal: None) -> int:
    """Build the server from the options and serve until the client or a signal stops it."""
    try:
        from goex_tools.mcp.server import build_server, serve
    except ImportError as exc:
        if not (exc.name or "").startswith(("mcp", "uvicorn", "starlette")):
            raise
        raise GoexError(
            f"goex mcp needs the MCP SDK ({exc.name} is missing): pip install 'goex-tools[mcp]'"
        ) from None
    if args.approver == "console" and args.transport == "stdio":
        raise InvalidArgument("--approver console needs --transport http: stdio is the protocol")
    server = build_server(
        workspace=_workspace(args),
        databases=args.database,
        http=http_tool(args.http) if args.http else None,
        shell=not args.no_shell,
        prefix=args.prefix,
        policy=_policy(args),
        journal=args.journal,
        run_name=args.run_name,
        run_id=args.run_id,
        host=args.host,
        port=args.port,
    )
    serve(server, args.transport, announce=_announce)
    return EXIT_OK


def _announce(url: str) -> None:
    print(f"goex MCP server at {url}", file=sys.stderr, flush=True)


def _workspace(args: argparse.Namespace) -> Any:
    if args.workspace is None:
        return None
    from goex_tools.domains.fs import Workspace

    options: dict[str, Any] = {"store": args.store}
    if args.sandbox is not None:
        options["sandbox"] = args.sandbox
    try:
        return Workspace(args.workspace, **options)
    except GoexError as exc:
        raise InvalidArgument(f"--workspace {args.workspace}: {exc}") from None


def _policy(args: argparse.Namespace) -> Any:
    approver = load_approver(args.approver) if args.approver else None
    if args.policy is None:
        if approver is not None:
            raise InvalidArgument("--approver answers a policy's `ask`: give --policy too")
        return None
    from goex_tools.policy import Policy

    return Policy.from_file(args.policy, approver=approver)


def load_approver(spec: str) -> Approver:
    """`console`, or `module:name` naming a callable that takes an ApprovalRequest."""
    if spec == "console":
        from goex_tools.policy import ConsolePrompt

        return ConsolePrompt(show=lambda text: print(text, file=sys.stderr))
    module, _, name = spec.partition(":")
    if not module or not name:
        raise InvalidArgument(f"--approver takes MODULE:NAME or console, not {spec!r}")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"--approver {spec}: {exc}") from None
    if not callable(found):
        raise InvalidArgument(f"--approver {spec} is not callable")
    approver: Approver = found
    return approver


def http_tool(sources: list[str]) -> HttpTool:
    """An HttpTool whose undo rules come from each source in turn (see `--http`)."""
    from goex_tools.domains.http import HttpTool, UndoRules

    rules = UndoRules()
    for source in sources:
        _add_rules(rules, source)
    return HttpTool(rules)


def _add_rules(rules: UndoRules, source: str) -> None:
    from goex_tools.domains.http import OpenAPIError, UndoRule

    if source == "none":
        return
    if source == "github":
        from goex_tools.domains.http.packs import github

        rules.add(*github.rules().rules)
        return
    try:
        if source.startswith(("http://", "https://")):
            rules.add_openapi(source)
            return
        document = yaml.safe_load(Path(source).read_text())
        if isinstance(document, dict) and ("openapi" in document or "swagger" in document):
            rules.add_openapi(document)
            return
        listed = document.get("rules") if isinstance(document, dict) else document
        if not isinstance(listed, list):
            raise InvalidArgument(
                f"--http {source}: expected an OpenAPI document, a list of undo rules or "
                f"a mapping with `rules:`"
            )
        rules.add(*(UndoRule.model_validate(rule) for rule in listed))
    except (OSError, yaml.YAMLError, OpenAPIError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"--http {source}: {exc}") from None
