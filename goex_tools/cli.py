"""`goex`: look at what agents did and undo it, over the same functions as the Python API.

Exit status: 0 done; 1 the operation stopped (a rollback conflict or failure, unresolved
recovery); 2 bad input (unknown run or step, invalid arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from goex_tools.errors import GoexError, NotFound, RollbackFailed
from goex_tools.journal import Journal, get_journal
from goex_tools.model import Step
from goex_tools.recovery import recover
from goex_tools.rollback import RollbackReport, rollback, undo_step

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT = 0, 1, 2

console = Console()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        if not getattr(args, "needs_journal", True):  # `doctor` checks the journal itself
            return int(args.handler(args, None))
        handler: Callable[[argparse.Namespace, Journal], int] = args.handler
        return handler(args, get_journal(args.journal))
    except RollbackFailed as exc:
        failure = exc

        def show() -> None:
            _print_report(failure.report)
            console.print(f"[red]{failure}[/red]")

        _emit(args, {"error": str(exc), "report": exc.report.model_dump(mode="json")}, show)
        return EXIT_STOPPED
    except (NotFound, ValueError) as exc:
        _error(args, str(exc))
        return EXIT_BAD_INPUT
    except GoexError as exc:
        _error(args, str(exc))
        return EXIT_STOPPED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="goex", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _global_options(parser, None)
    # The same options after the command; SUPPRESS keeps a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("runs", parents=[common], help="list recent runs")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("show", parents=[common], help="show a run's steps")
    p.add_argument("run_id")
    p.set_defaults(handler=cmd_show)

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

    p = sub.add_parser("undo", parents=[common], help="undo one step")
    p.add_argument("step_id")
    _rollback_options(p)
    p.set_defaults(handler=cmd_undo)

    p = sub.add_parser("recover", parents=[common], help="resolve steps left pending by a crash")
    p.add_argument(
        "--assume",
        action="append",
        default=[],
        metavar="STEP=applied|failed",
        help="a person's answer for a step the domain cannot probe",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="also take steps whose process looks alive or is on another host",
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
    p.set_defaults(handler=cmd_doctor, needs_journal=False)
    _fs_commands(sub, common)
    return parser


# Filesystem steps: review a step's changes, decide on tentative (held) commands.


def _fs_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("diff", parents=[common], help="show what a filesystem step changed")
    p.add_argument("step_id")
    p.set_defaults(handler=cmd_diff)
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
    from goex_tools.domains.fs import diff

    result = diff(args.step_id, journal=journal)
    _emit(args, result.model_dump(mode="json"), lambda: print(result.text()))
    return EXIT_OK


def cmd_keep(args: argparse.Namespace, journal: Journal) -> int:
    from goex_tools.domains.fs import keep

    step = keep(args.step_id, journal=journal, force=args.force)
    _emit(args, step.model_dump(mode="json"), lambda: console.print(f"kept {step.id}: applied"))
    return EXIT_OK


def cmd_discard(args: argparse.Namespace, journal: Journal) -> int:
    from goex_tools.domains.fs import discard

    step = discard(args.step_id, journal=journal)
    _emit(args, step.model_dump(mode="json"), lambda: console.print(f"discarded {step.id}"))
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


def cmd_runs(args: argparse.Namespace, journal: Journal) -> int:
    runs = journal.list_runs(limit=args.limit)

    def table() -> None:
        t = Table("run", "name", "status", "started", "ended")
        for r in runs:
            t.add_row(r.id, r.name, r.status.value, _when(r.started_at), _when(r.ended_at))
        console.print(t)

    _emit(args, [r.model_dump(mode="json") for r in runs], table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace, journal: Journal) -> int:
    run = journal.get_run(args.run_id)
    steps = journal.steps(run.id)

    def table() -> None:
        console.print(f"[bold]{run.name or run.id}[/bold]  {run.id}  {run.status.value}")
        console.print(steps_table(steps))

    _emit(
        args,
        {"run": run.model_dump(mode="json"), "steps": [s.model_dump(mode="json") for s in steps]},
        table,
    )
    return EXIT_OK


def steps_table(steps: list[Step]) -> Table:
    """A run's steps as a table (used by the CLI and the notebook helpers)."""
    depth: dict[str, int] = {}
    t = Table("#", "step", "tool", "domain", "status", "undo")
    for s in steps:
        depth[s.id] = depth.get(s.parent_id or "", -1) + 1
        undo = s.compensation.description or s.compensation.kind if s.compensation else "-"
        status = s.status.value + (f" ({s.error})" if s.error else "")
        t.add_row(str(s.seq), s.id, "  " * depth[s.id] + s.tool, s.domain, status, undo)
    return t


def cmd_rollback(args: argparse.Namespace, journal: Journal) -> int:
    report = rollback(
        args.run_id,
        steps=args.steps,
        to=args.to,
        journal=journal,
        dry_run=args.dry_run,
        force=args.force,
        on_irreversible="skip" if args.skip_irreversible else "stop",
    )
    _emit(args, report.model_dump(mode="json"), lambda: _print_report(report))
    return EXIT_OK


def cmd_undo(args: argparse.Namespace, journal: Journal) -> int:
    report = undo_step(args.step_id, journal=journal, dry_run=args.dry_run, force=args.force)
    _emit(args, report.model_dump(mode="json"), lambda: _print_report(report))
    return EXIT_OK


def cmd_recover(args: argparse.Namespace, journal: Journal) -> int:
    assume: dict[str, Any] = {}
    for item in args.assume:
        step_id, _, answer = item.partition("=")
        if answer not in ("applied", "failed"):
            raise ValueError(f"--assume takes STEP=applied or STEP=failed, not {item!r}")
        assume[step_id] = answer
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
    """Every check is tried for real; exit 1 if any confinement the policy needs is missing."""
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
    t = Table("step", "tool", "outcome", "detail", title=f"{verb}: run {report.run_id}")
    for o in report.outcomes:
        t.add_row(o.step_id, o.tool, o.outcome, o.detail)
    console.print(t if report.outcomes else "nothing to undo")


def _emit(args: argparse.Namespace, data: Any, show: Callable[[], Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        show()


def _error(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    else:
        Console(stderr=True).print(f"[red]error:[/red] {message}")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


if __name__ == "__main__":
    sys.exit(main())
