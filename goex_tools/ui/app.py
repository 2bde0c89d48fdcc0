"""The review page's web app (Starlette, Jinja2 templates, htmx; no build step).

Every route is a thin layer over the public API, as the CLI is: `journal_overview` lists
runs, `ui.steps` lays a run out, `rollback`/`undo_step` plan (dry run) and undo,
`domains.fs.keep`/`discard` decide on held commands, the `journal_approvals` board carries
asks and answers. Pages update live: `/events` (server-sent events) says when the journal
changed and the page reloads the parts marked `data-live`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from goex_tools.errors import GoexError, NotFound, RollbackFailed
from goex_tools.journal import Journal
from goex_tools.journal_approvals import Approval, ApprovalBoard
from goex_tools.journal_overview import journal_mark, run_summaries
from goex_tools.model import RollbackReport, RunStatus, StepOutcome, StepStatus, utcnow
from goex_tools.notebook import shown_steps, step_numbers
from goex_tools.redaction import redact
from goex_tools.rollback import foresee_conflicts, rollback, undo_step
from goex_tools.ui.guard import CSRF_HEADER, Guard, Keys
from goex_tools.ui.steps import run_calls

__all__ = ["Review", "create_app"]

HERE = Path(__file__).parent
PAGE = 50  # runs per page
SEARCH_LIMIT = 200
CHECK_EVERY = 1.0  # seconds between looks at the journal for the live stream
KEEPALIVE = 15.0  # seconds between comments on a quiet live stream
ANSWERED_BY = "the review page"


def _masked(value: Any) -> Any:
    """Every value a template prints passes here: a secret shows only as [REDACTED]."""
    return redact(value) if isinstance(value, str) else value


templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        finalize=_masked,
    )
)


@dataclass
class Review:
    """What the app serves: one journal, its approval board, and the page's keys."""

    journal: Journal
    keys: Keys
    board: ApprovalBoard

    def mark(self) -> str:
        return journal_mark(self.journal) + "|" + self.board.mark()


def create_app(journal: Journal, keys: Keys, hosts: list[str]) -> Starlette:
    """The app over `journal`, answering only requests that pass `Guard(keys, hosts)`."""
    review = Review(journal, keys, ApprovalBoard(journal))

    def page(name: str, handler: Callable[[Request, Review], dict[str, Any]]) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                context = handler(request, review)
            except NotFound as exc:
                return _page(request, review, "error.html", {"error": str(exc)}, 404)
            except GoexError as exc:
                return _page(request, review, "error.html", {"error": str(exc)}, 409)
            return _page(request, review, name, context)

        return endpoint

    async def events(request: Request) -> Response:
        return StreamingResponse(
            _events(request, review),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    routes = [
        Route("/", page("runs.html", _runs)),
        Route("/fragments/runs", page("_runs.html", _runs)),
        Route("/runs/{run_id}", page("run.html", _run)),
        Route("/fragments/runs/{run_id}", page("_calls.html", _run)),
        Route("/fragments/runs/{run_id}/head", page("_run_head.html", _run)),
        Route("/runs/{run_id}/plan", page("_plan.html", _plan), methods=["POST"]),
        Route("/runs/{run_id}/undo", page("_result.html", _undo), methods=["POST"]),
        Route("/steps/{step_id}/{decision:str}", page("_held.html", _held), methods=["POST"]),
        Route("/approvals", page("approvals.html", _approvals)),
        Route("/fragments/approvals", page("_approvals.html", _approvals)),
        Route("/fragments/badge", page("_badge.html", _badge)),
        Route(
            "/approvals/{ask_id}/{answer:str}",
            page("_approvals.html", _answer),
            methods=["POST"],
        ),
        Route("/events", events),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, keys=keys, hosts=hosts)])


def _page(
    request: Request, review: Review, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    base = {
        "csrf_header": json.dumps({CSRF_HEADER: review.keys.csrf}),
        "pending": len(review.board.pending()),
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status
    )
    return response


# the runs


def _runs(request: Request, review: Review) -> dict[str, Any]:
    search = request.query_params.get("q", "")[:SEARCH_LIMIT]
    offset = _number(request.query_params.get("offset"), 0)
    summaries = run_summaries(review.journal, limit=PAGE + 1, offset=offset, search=search)
    return {
        "runs": summaries[:PAGE],
        "search": search,
        "offset": offset,
        "more": len(summaries) > PAGE,
        "page_size": PAGE,
    }


def _run(request: Request, review: Review) -> dict[str, Any]:
    run, calls = run_calls(review.journal, request.path_params["run_id"])
    asks = [a for a in review.board.pending() if a.run_id == run.id]
    return {
        "run": run,
        "calls": calls,
        "asks": asks,
        "active": run.status is RunStatus.ACTIVE,
        "metadata": json.dumps(redact(run.metadata), sort_keys=True),
    }


# undo: a dry run first, then the rollback it planned


@dataclass(frozen=True)
class Scope:
    """Which steps an undo takes: `step` (that step only), `after` (every step journaled
    after it), `last` (the last `calls` tool calls) or `run` (the whole run)."""

    kind: str
    step: str | None = None
    calls: int | None = None

    def describe(self, numbers: dict[str, str]) -> str:
        if self.kind == "step":
            return f"step #{numbers.get(self.step or '', '?')}"
        if self.kind == "after":
            return f"everything after step #{numbers.get(self.step or '', '?')}"
        if self.kind == "last":
            return f"the last {self.calls} tool call(s)"
        return "the whole run"


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _scope(form: dict[str, str]) -> Scope:
    kind = form.get("scope", "")
    if kind in ("step", "after"):
        if not form.get("step"):
            raise GoexError("no step was chosen")
        return Scope(kind, step=form["step"])
    if kind == "last":
        calls = _number(form.get("calls"), 0)
        if calls < 1:
            raise GoexError("the number of tool calls to undo must be 1 or more")
        return Scope(kind, calls=calls)
    if kind == "run":
        return Scope(kind)
    raise GoexError(f"unknown undo scope {kind!r}")


def _rolled(request: Request, review: Review, *, dry_run: bool) -> dict[str, Any]:
    """The plan of an undo (a dry run), or the undo itself, for the page."""
    form = _read_form(request)
    scope = _scope(form)
    run_id = request.path_params["run_id"]
    report, error = _roll(review.journal, run_id, scope, form, dry_run=dry_run)
    run = review.journal.get_run(run_id)
    steps = review.journal.steps(run_id)
    numbers = step_numbers(steps, shown_steps(steps))
    return {
        "run": run,
        "scope": scope,
        "what": scope.describe(numbers),
        "form": form,
        "report": report,
        "error": error,
        "numbers": numbers,
        "irreversible": [o for o in report.outcomes if o.outcome == "irreversible"],
        "blocked": [o for o in report.outcomes if o.outcome in ("pending", "busy")],
        "conflicts": [o for o in report.outcomes if o.outcome == "conflict"],
        "active": run.status is RunStatus.ACTIVE,
    }


def _plan(request: Request, review: Review) -> dict[str, Any]:
    return _rolled(request, review, dry_run=True)


def _undo(request: Request, review: Review) -> dict[str, Any]:
    return _rolled(request, review, dry_run=False)


def _roll(
    journal: Journal, run_id: str, scope: Scope, form: dict[str, str], *, dry_run: bool
) -> tuple[RollbackReport, str | None]:
    """The rollback `scope` names (a dry run, or for real); a rollback that stops is
    reported with why, not raised."""
    options: dict[str, Any] = {
        "journal": journal,
        "dry_run": dry_run,
        "force": form.get("force") == "on",
        "live": form.get("live") == "on",
    }
    try:
        if scope.kind == "step":
            assert scope.step is not None
            if journal.get_step(scope.step).run_id != run_id:
                raise NotFound(f"run {run_id} has no step {scope.step!r}")
            report = undo_step(scope.step, **options)
        else:
            report = rollback(
                run_id,
                steps=scope.calls,
                to=scope.step if scope.kind == "after" else None,
                on_irreversible="skip" if form.get("skip_irreversible") == "on" else "stop",
                **options,
            )
    except RollbackFailed as exc:
        return _redacted(exc.report), str(redact(str(exc)))
    if dry_run and not options["force"]:
        report = _with_conflicts(journal, report)
    return _redacted(report), None


def _with_conflicts(journal: Journal, report: RollbackReport) -> RollbackReport:
    """A dry run's report with the conflicts the steps' domains foresee now (someone changed
    what a step left), for the steps it would undo, in the order it would undo them."""
    ids = [o.step_id for o in report.outcomes if o.outcome == "would_compensate"]
    found = foresee_conflicts([journal.get_step(i) for i in ids]) if ids else {}
    outcomes = [
        StepOutcome(
            step_id=o.step_id,
            tool=o.tool,
            outcome="conflict",
            detail=f"conflict: {found[o.step_id]} (tick force to overwrite)",
        )
        if o.step_id in found
        else o
        for o in report.outcomes
    ]
    return report.model_copy(update={"outcomes": outcomes})


def _redacted(report: RollbackReport) -> RollbackReport:
    return RollbackReport.model_validate(redact(report.model_dump(mode="json")))


# held (tentative) commands


def _held(request: Request, review: Review) -> dict[str, Any]:
    from goex_tools.domains.fs import discard, keep

    form = _read_form(request)
    step_id, decision = request.path_params["step_id"], request.path_params["decision"]
    step = review.journal.get_step(step_id)
    error = None
    try:
        if decision == "keep":
            step = keep(step_id, journal=review.journal, force=form.get("force") == "on")
        elif decision == "discard":
            step = discard(step_id, journal=review.journal)
        else:
            raise NotFound(f"no such decision on a held command: {decision!r}")
    except NotFound:
        raise
    except GoexError as exc:
        error = str(redact(str(exc)))
        step = review.journal.get_step(step_id)
    return {"step": step, "decision": decision, "error": error, "held": StepStatus.HELD}


# approvals


def _approvals(request: Request, review: Review) -> dict[str, Any]:
    pending = review.board.pending()
    open_ids = {a.id for a in pending}
    answered = [a for a in review.board.recent(20) if a.id not in open_ids]
    return {"asks": pending, "answered": answered, "now": utcnow(), "json": _pretty}


def _answer(request: Request, review: Review) -> dict[str, Any]:
    _read_form(request)
    ask_id, answer = request.path_params["ask_id"], request.path_params["answer"]
    if answer not in ("approve", "refuse"):
        raise NotFound(f"no such answer: {answer!r} (approve or refuse)")
    done: Approval = review.board.answer(ask_id, answer == "approve", by=ANSWERED_BY)
    context = _approvals(request, review)
    wanted = "approved" if answer == "approve" else "refused"
    if done.status != wanted:
        context["notice"] = (
            f"too late: this request is {done.status} "
            f"({done.answered_by or 'no answer in time'}); the agent did not run it"
            if done.status != "approved"
            else "this request was approved already"
        )
    else:
        context["notice"] = f"{wanted}: {done.request.get('domain')}.{done.request.get('tool')}"
    return context


def _badge(request: Request, review: Review) -> dict[str, Any]:
    return {}


# helpers


def _read_form(request: Request) -> dict[str, str]:
    """The POSTed form, read in the worker thread the endpoint runs in."""
    found: dict[str, str] = anyio.from_thread.run(_form, request)
    return found


def _number(text: str | None, default: int) -> int:
    try:
        value = int(text or default)
    except ValueError:
        return default
    return max(0, min(value, 2**31))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


async def _events(request: Request, review: Review) -> AsyncIterator[str]:
    """`changed` whenever the journal or the approval board changes; a comment now and then
    keeps the connection open."""
    last = await anyio.to_thread.run_sync(review.mark)
    yield "event: hello\ndata: \n\n"
    quiet = 0.0
    while not await request.is_disconnected():
        await anyio.sleep(CHECK_EVERY)
        try:
            mark = await anyio.to_thread.run_sync(review.mark)
        except GoexError:  # the journal is unreachable for now: try again later
            continue
        if mark != last:
            last, quiet = mark, 0.0
            yield "event: changed\ndata: \n\n"
        else:
            quiet += CHECK_EVERY
            if quiet >= KEEPALIVE:
                quiet = 0.0
                yield ": still here\n\n"
