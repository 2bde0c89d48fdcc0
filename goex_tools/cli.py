"""`goex`: look at what agents did and undo it, over the same functions as the Python API.

Exit status: 0 done; 1 the operation stopped (a rollback conflict or failure, unresolved
recovery); 2 bad input (unknown run or step, invalid arguments) or a journal that cannot be
used (none at that URL, unreachable, full, locked). With --json every outcome, errors
included, is one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from goex_tools import thread_view
from goex_tools.errors import GoexError, InvalidArgument, JournalError, NotFound, RollbackFailed
from goex_tools.journal import Journal
from goex_tools.mcp.command import add_command as add_mcp_command
from goex_tools.model import Step
from goex_tools.recovery import recover
from goex_tools.rollback import RollbackReport, rollback, undo_step
from goex_tools.threads import RewindReport, rewind
from goex_tools.ui import add_command as add_ui_command

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT = 0, 1, 2
SHOW_LIMIT = 100  # steps `show` prints unless told otherwise (newest first)
MAX_PAGE = 100_000
MAX_OFFSET = 2**62  # fits every database's integer

console = Console()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _usage_error(as_json, str(exc), exc.usage)
        return EXIT_BAD_INPUT
    if not hasattr(args, "handler"):
        _usage_error(as_json, "no command given", parser.format_usage())
        return EXIT_BAD_INPUT
    try:
        return _run(args)
    except RollbackFailed as exc:
        failure = exc

        def show() -> None:
            _print_report(failure.report)
            console.print(f"[red]{failure}[/red]")

        _emit(args, {"error": str(exc), "report": exc.report.model_dump(mode="json")}, show)
        return EXIT_STOPPED
    except (NotFound, JournalError, ValueError) as exc:  # InvalidArgument is a ValueError
        _error(args, str(exc))
        return EXIT_BAD_INPUT
    except GoexError as exc:
        _error(args, str(exc))
        return EXIT_STOPPED


def _run(args: argparse.Namespace) -> int:
    """Open the journal the way the command needs it (reading commands create nothing and
    take no lock; no command creates a journal), then run the command."""
    access = getattr(args, "access", "write")
    if access == "none":  # `doctor` checks the journal itself
        return int(args.handler(args, None))
    journal = Journal(args.journal, read_only=access == "read", create=False)
    try:
        handler: Callable[[argparse.Namespace, Journal], int] = args.handler
        return handler(args, journal)
    finally:
        journal.close()


class UsageError(Exception):
    """Bad command-line arguments (argparse's complaint), reported as exit status 2."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Commands:
    """Subcommands whose --help shows their handler's docstring (with its example)."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        parser: argparse.ArgumentParser = self.sub.add_parser(name, **kwargs)
        return parser


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting, so that `--json`
    still gets JSON."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low} and {high}")
        return value

    return parse


def _assumption(text: str) -> tuple[str, str]:
    step_id, _, answer = text.partition("=")
    if not step_id or answer not in ("applied", "failed"):
        raise argparse.ArgumentTypeError(f"takes STEP=applied or STEP=failed, not {text!r}")
    return step_id, answer


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="goex", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _global_options(parser, None)
    # The same options after the command; SUPPRESS keeps a value given before the command.
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = _Commands(parser.add_subparsers(metavar="COMMAND"))

    p = sub.add_parser("runs", parents=[common], help="list recent runs, newest first")
    p.add_argument("--limit", type=_count(1, MAX_PAGE), default=50, help="runs to list")
    p.add_argument("--offset", type=_count(0, MAX_OFFSET), default=0, help="newest to skip")
    p.set_defaults(handler=cmd_runs, access="read")

    p = sub.add_parser(
        "show", parents=[common], help="show a run's steps (or a thread's checkpoints)"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("run_id", nargs="?")
    which.add_argument(
        "--thread", metavar="ID", help="a conversation's checkpoints, the calls after each"
    )
    p.add_argument("--limit", type=_count(1, MAX_PAGE), default=SHOW_LIMIT, help="steps to show")
    p.add_argument("--offset", type=_count(0, MAX_OFFSET), default=0, help="newest to skip")
    p.set_defaults(handler=cmd_show, access="read")

    p = sub.add_parser(
        "rollback",
        parents=[common],
        help="undo a run, its last N tool calls, or everything after a step",
    )
    p.add_argument("run_id")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--steps", type=int, help="undo only the last N tool calls")
    which.add_argument("--to", metavar="STEP", help="undo every step after STEP")
    _rollback_options(p)
    p.add_argument(
        "--skip-irreversible",
        action="store_true",
        help="go past irreversible steps instead of stopping at them",
    )
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser(
        "rewind", parents=[common], help="bring the world back to a checkpoint of a thread"
    )
    p.add_argument("--thread", metavar="ID", required=True, help="the conversation's id")
    p.add_argument("--checkpoint", metavar="ID", required=True, help="the checkpoint's id")
    _rollback_options(p)
    p.add_argument(
        "--skip-irreversible",
        action="store_true",
        help="go past irreversible steps instead of stopping before anything is undone",
    )
    p.set_defaults(handler=cmd_rewind)

    p = sub.add_parser("undo", parents=[common], help="undo one step")
    p.add_argument("step_id")
    _rollback_options(p)
    p.set_defaults(handler=cmd_undo)

    p = sub.add_parser("recover", parents=[common], help="resolve steps left pending by a crash")
    p.add_argument(
        "--assume",
        action="append",
        type=_assumption,
        default=[],
        metavar="STEP=applied|failed",
        help="a person's answer for a step the domain cannot probe",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="also take steps whose process runs or cannot be proven gone (another machine "
        "or container): only when you know it is gone",
    )
    p.set_defaults(handler=cmd_recover)

    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="report the confinement achieved here: sandboxes, network isolation, journal, secrets",
    )
    p.add_argument(
        "--policy", metavar="FILE", help="also validate a policy file against this machine"
    )
    p.set_defaults(handler=cmd_doctor, access="none")
    _fs_commands(sub, common)
    add_mcp_command(sub, common)
    add_ui_command(sub, common)
    _auth_commands(sub, common)
    for command in sub.sub.choices.values():  # --help shows the handler's doc and example
        handler = command.get_default("handler")
        if command.description is None and handler is not None and handler.__doc__:
            command.description = inspect.cleandoc(handler.__doc__)
    return parser


# Filesystem steps: review a step's changes, decide on tentative (held) commands.


def _fs_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("diff", parents=[common], help="show what a filesystem step changed")
    p.add_argument("step_id")
    p.set_defaults(handler=cmd_diff, access="read")
    p = sub.add_parser("keep", parents=[common], help="apply a held (tentative) command's changes")
    p.add_argument("step_id")
    p.add_argument(
        "--force", action="store_true", help="apply even where the workspace changed since"
    )
    p.set_defaults(handler=cmd_keep)
    p = sub.add_parser("discard", parents=[common], help="drop a held (tentative) command")
    p.add_argument("step_id")
    p.set_defaults(handler=cmd_discard)


def cmd_diff(args: argparse.Namespace, journal: Journal) -> int:
    """Show what a filesystem step changed (a unified diff; binary files by size and hash).

    Example:

        goex diff 9b1e07...
    """
    from goex_tools.domains.fs import diff

    result = diff(args.step_id, journal=journal)
    _emit(args, result.model_dump(mode="json"), lambda: print(result.text()))
    return EXIT_OK


def cmd_keep(args: argparse.Namespace, journal: Journal) -> int:
    """Apply a held (tentative) command's changes; the step becomes undoable.

    Example:

        goex keep 9b1e07...
    """
    from goex_tools.domains.fs import keep

    step = keep(args.step_id, journal=journal, force=args.force)
    _emit(args, step.model_dump(mode="json"), lambda: console.print(f"kept {step.id}: applied"))
    return EXIT_OK


def cmd_discard(args: argparse.Namespace, journal: Journal) -> int:
    """Drop a held (tentative) command; the workspace stays as it is.

    Example:

        goex discard 9b1e07...
    """
    from goex_tools.domains.fs import discard

    step = discard(args.step_id, journal=journal)
    _emit(args, step.model_dump(mode="json"), lambda: console.print(f"discarded {step.id}"))
    return EXIT_OK


# OAuth2 grants: `{{secret:NAME}}` is then the grant's current access token.

FLOWS = {"code": "authorization_code", "device": "device_code", "client": "client_credentials"}


def _auth_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    auth = sub.add_parser(
        "auth", help="sign in with OAuth2: {{secret:NAME}} becomes the access token"
    )
    actions = auth.add_subparsers(metavar="ACTION")
    p = actions.add_parser(
        "login",
        parents=[common],
        help="sign in and keep the grant (keyring, or a 0600 file)",
        description=cmd_auth_login.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="the secret's name, as the model writes it: {{secret:NAME}}")
    p.add_argument("--hosts", required=True, help="comma-separated hosts the token may go to")
    p.add_argument("--client-id", required=True)
    p.add_argument(
        "--client-secret-env", metavar="VAR", help="environment variable holding the secret"
    )
    p.add_argument("--flow", choices=sorted(FLOWS), default="code")
    p.add_argument("--issuer", help="discover the endpoints from the issuer's metadata")
    p.add_argument("--token-url")
    p.add_argument("--authorize-url")
    p.add_argument("--device-url")
    p.add_argument("--revoke-url")
    p.add_argument("--scope")
    p.add_argument("--port", type=int, default=0, help="the redirect listener's port (code)")
    p.add_argument("--no-browser", action="store_true", help="print the sign-in URL only")
    p.set_defaults(handler=cmd_auth_login, access="none")
    p = actions.add_parser("list", parents=[common], help="the signed-in grants (no tokens)")
    p.set_defaults(handler=cmd_auth_list, access="none")
    p = actions.add_parser("logout", parents=[common], help="revoke and forget a grant")
    p.add_argument("name")
    p.set_defaults(handler=cmd_auth_logout, access="none")


def cmd_auth_login(args: argparse.Namespace, _journal: None) -> int:
    """Sign in to an OAuth2 server; the model then writes {{secret:NAME}}.

    Example:

        goex auth login github --issuer https://auth.example --client-id ID \\
            --hosts api.github.com --scope repo
        goex auth login ci --flow device --issuer https://auth.example --client-id ID \\
            --hosts api.example.com
    """
    import os
    import webbrowser

    from goex_tools.oauth import OAuthClient, login

    secret = None
    if args.client_secret_env:
        secret = os.environ.get(args.client_secret_env)
        if not secret:
            raise InvalidArgument(f"${args.client_secret_env} is empty or not set")
    fields: dict[str, Any] = {
        "flow": FLOWS[args.flow],
        "client_id": args.client_id,
        "client_secret": secret,
        "scope": args.scope,
        "hosts": [h.strip() for h in args.hosts.split(",") if h.strip()],
    }
    given = {
        "token_endpoint": args.token_url,
        "authorization_endpoint": args.authorize_url,
        "device_authorization_endpoint": args.device_url,
        "revocation_endpoint": args.revoke_url,
    }
    fields |= {k: v for k, v in given.items() if v}
    if args.issuer:
        client = OAuthClient.discover(args.issuer, **fields)
    elif args.token_url:
        client = OAuthClient.model_validate(fields)
    else:
        raise InvalidArgument("give --issuer, or --token-url (and the flow's other endpoints)")

    def show(text: str) -> None:
        Console(stderr=True).print(text, soft_wrap=True)

    def browser(url: str) -> None:
        if not args.no_browser:
            webbrowser.open(url)

    grant = login(args.name, client, open_browser=browser, show=show, port=args.port)
    _emit(args, grant.summary(), lambda: console.print(f"signed in: {args.name}"))
    return EXIT_OK


def cmd_auth_list(args: argparse.Namespace, _journal: None) -> int:
    """The grants `goex auth login` keeps: name, flow, hosts, expiry; never a token."""
    from goex_tools.oauth import grants

    found = grants()

    def table() -> None:
        t = Table("name", "flow", "hosts", "client", "expires")
        for g in found:
            when = g["expires_at"]
            expires = _when(datetime.fromtimestamp(when, UTC)) if when else "-"
            t.add_row(g["name"], g["flow"], ", ".join(g["hosts"]), g["client_id"], expires)
        console.print(t if found else "no grants")

    _emit(args, found, table)
    return EXIT_OK


def cmd_auth_logout(args: argparse.Namespace, _journal: None) -> int:
    """Revoke a grant at its server (where it says how) and forget it."""
    from goex_tools.oauth import logout

    if not logout(args.name):
        raise NotFound(f"no grant named {args.name!r}")
    _emit(args, {"logged_out": args.name}, lambda: console.print(f"logged out: {args.name}"))
    return EXIT_OK


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--journal",
        default=default,
        help="journal URL (default: $GOEX_JOURNAL_URL or sqlite:///.goex/journal.db)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if default is None else default,
        help="machine-readable output",
    )


def _rollback_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would be undone; undo nothing")
    p.add_argument(
        "--force",
        action="store_true",
        help="undo even where someone changed the same thing since (conflicts)",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="also roll back a run that is still active (its agent may be running); the run "
        "is closed first: its next tool call is refused",
    )


def cmd_runs(args: argparse.Namespace, journal: Journal) -> int:
    """List recent runs, newest first.

    Example:

        goex runs --limit 20
        goex runs --journal postgresql+psycopg://goex@db/goex --json
    """
    runs = journal.list_runs(limit=args.limit, offset=args.offset)

    def table() -> None:
        t = Table("run", "name", "status", "started", "ended")
        for r in runs:
            t.add_row(r.id, r.name, r.status.value, _when(r.started_at), _when(r.ended_at))
        console.print(t)

    _emit(args, [r.model_dump(mode="json") for r in runs], table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace, journal: Journal) -> int:
    """Show a run's steps, newest first, 100 at a time (nested steps indented).

    Example:

        goex show 3f2a9c... --limit 50 --offset 50
        goex show --thread 7d1e...   (a LangGraph thread's checkpoints)
    """
    if args.thread is not None:
        return _show_thread(args, journal)
    run = journal.get_run(args.run_id)
    total = journal.count_steps(run.id)
    steps = journal.steps(run.id, limit=args.limit, offset=args.offset, newest_first=True)

    def table() -> None:
        console.print(f"[bold]{run.name or run.id}[/bold]  {run.id}  {run.status.value}")
        console.print(_steps_table(steps))
        if len(steps) < total:
            first, last = args.offset + 1, args.offset + len(steps)
            console.print(
                f"steps {first}-{last} of {total}, newest first (--limit N --offset M for more)"
            )

    page = {"total": total, "limit": args.limit, "offset": args.offset}
    steps_json = [s.model_dump(mode="json") for s in steps]
    _emit(args, {"run": run.model_dump(mode="json"), "steps": steps_json, **page}, table)
    return EXIT_OK


def _show_thread(args: argparse.Namespace, journal: Journal) -> int:
    view = thread_view.thread(args.thread, journal=journal)
    if not view.checkpoints:
        raise NotFound(f"no tool call of thread {args.thread!r} in {journal!r}")
    checkpoints = [c.model_dump(mode="json") for c in view.checkpoints]
    _emit(args, {"thread": args.thread, "checkpoints": checkpoints}, lambda: console.print(view))
    return EXIT_OK


def cmd_rewind(args: argparse.Namespace, journal: Journal) -> int:
    """Bring the world back to a checkpoint of a conversation (a LangGraph thread): undo,
    newest first, every effect of its tool calls made after it, across all its runs.

    Every step is checked first: a conflict, an irreversible step (unless
    --skip-irreversible), a pending step or a run still being run stops it before anything
    is undone. Resume the graph from the config printed last. From the journal alone goex
    cannot tell two graphs apart that use the same thread id (langchain_goex.rewind, given
    the graph, leaves the other graph's calls alone).

    Example:

        goex show --thread 7d1e...
        goex rewind --thread 7d1e... --checkpoint 1f0a3b... --dry-run
    """
    point = thread_view.checkpoint_of(args.thread, args.checkpoint, journal=journal)
    report = rewind(
        point,
        journal=journal,
        dry_run=args.dry_run,
        force=args.force,
        on_irreversible="skip" if args.skip_irreversible else "stop",
        live=args.live,
    )

    def show() -> None:
        _print_report(report)
        if not report.dry_run:
            console.print(f"resume from: {json.dumps(report.config)}")

    _emit(args, report.model_dump(mode="json"), show)
    return EXIT_OK if report.complete else EXIT_STOPPED


def _steps_table(steps: list[Step]) -> Table:
    """Steps as a table, each indented under its parent when the parent is on the page."""
    parents = {s.id: s.parent_id for s in steps}

    def depth(step: Step) -> int:
        level, up, seen = 0, step.parent_id, {step.id}
        while up is not None and up not in seen:
            level += 1
            seen.add(up)
            up = parents.get(up)
        return level

    t = Table("#", "step", "tool", "domain", "status", "undo")
    for s in steps:
        undo = s.undo_summary
        status = s.status.value + (f" ({s.error})" if s.error else "")
        t.add_row(str(s.seq), s.id, "  " * depth(s) + s.tool, s.domain, status, undo)
    return t


def cmd_rollback(args: argparse.Namespace, journal: Journal) -> int:
    """Undo a run, its last N tool calls, or everything after a step.

    A run whose agent may still be running needs --live: the run is closed first, so the
    agent's next tool call is refused. A step left pending by a crash is resolved on the spot
    when its process is gone, or the rollback stops there and says so.

    Example:

        goex rollback 3f2a9c... --dry-run
        goex rollback 3f2a9c... --steps 2
        goex rollback 3f2a9c... --skip-irreversible
    """
    report = rollback(
        args.run_id,
        steps=args.steps,
        to=args.to,
        journal=journal,
        dry_run=args.dry_run,
        force=args.force,
        on_irreversible="skip" if args.skip_irreversible else "stop",
        live=args.live,
    )
    _emit(args, report.model_dump(mode="json"), lambda: _print_report(report))
    return EXIT_OK


def cmd_undo(args: argparse.Namespace, journal: Journal) -> int:
    """Undo one step, wherever it is in its run.

    Example:

        goex undo 9b1e07... --force
    """
    report = undo_step(
        args.step_id, journal=journal, dry_run=args.dry_run, force=args.force, live=args.live
    )
    _emit(args, report.model_dump(mode="json"), lambda: _print_report(report))
    return EXIT_OK


def cmd_recover(args: argparse.Namespace, journal: Journal) -> int:
    """Resolve steps a crash left pending or compensating: each domain says whether the
    effect happened. Steps whose process runs, or cannot be proven gone, are left alone and
    reported (--all takes them).

    Example:

        goex recover
        goex recover --assume 9b1e07...=applied
    """
    assume: dict[str, Any] = dict(args.assume)
    outcomes = recover(journal, assume=assume, include_live=args.all)

    def table() -> None:
        t = Table("step", "run", "tool", "resolution", "detail")
        for o in outcomes:
            t.add_row(o.step_id, o.run_id, o.tool, o.resolution, o.detail)
        console.print(t if outcomes else "nothing to recover")

    _emit(args, [o.model_dump(mode="json") for o in outcomes], table)
    unresolved = any(o.resolution == "unknown" for o in outcomes)
    return EXIT_STOPPED if unresolved else EXIT_OK


def cmd_doctor(args: argparse.Namespace, _journal: None) -> int:
    """Report the confinement this machine gives: sandboxes, network isolation, journal and
    secret store, each tried for real; exit 1 if something the policy needs is missing.

    Example:

        goex doctor --policy goex-policy.yaml
    """
    from goex_tools.policy.doctor import doctor

    report = doctor(args.journal, policy=args.policy)

    def table() -> None:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        t = Table("check", "status", "detail", title="goex doctor")
        for c in report.checks:
            t.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
        console.print(t)

    _emit(args, report.model_dump(mode="json") | {"ok": report.ok}, table)
    return EXIT_OK if report.ok else EXIT_STOPPED


def _print_report(report: RollbackReport) -> None:
    verb = "would undo" if report.dry_run else "undo"
    what = f"run {report.run_id}"
    if isinstance(report, RewindReport):
        what = f"thread {report.run_id} back to checkpoint {report.checkpoint_id}"
    t = Table("step", "tool", "outcome", "undo", "detail", title=f"{verb}: {what}")
    for o in report.outcomes:
        t.add_row(o.step_id, o.tool, o.outcome, o.undo or "-", o.detail)
    console.print(t if report.outcomes else "nothing to undo")
    if report.restored_semantically:
        console.print(
            f"{len(report.restored_semantically)} step(s) undone only semantically (the closest "
            f"thing the service allows, not the prior state): "
            + ", ".join(report.restored_semantically)
        )


def _emit(args: argparse.Namespace, data: Any, show: Callable[[], Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        show()


def _error(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    else:
        Console(stderr=True).print(f"[red]error:[/red] {message}", markup=True, highlight=False)


def _usage_error(as_json: bool, message: str, usage: str) -> None:
    if as_json:
        print(json.dumps({"error": message, "usage": usage.strip()}))
    else:
        sys.stderr.write(f"{usage}goex: error: {message}\n")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


if __name__ == "__main__":
    sys.exit(main())
