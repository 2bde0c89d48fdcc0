"""What the review and undo tools, resources and prompts of the MCP server say (no MCP SDK).

A run is shown as the notebook shows it (`notebook.RunView`): the tool calls numbered 1..N as
`rollback(steps=N)` counts them, each effect with what it changed (a unified diff for files,
rows before and after for SQL, the request and its status for HTTP) and how it is undone.
"""

from __future__ import annotations

from goex_tools.errors import InvalidArgument, RollbackFailed
from goex_tools.journal import Journal
from goex_tools.model import JSONDict, RollbackReport
from goex_tools.notebook import RunView
from goex_tools.redaction import redact
from goex_tools.rollback import rollback, top_level

__all__ = ["REVIEW_PROMPT", "UNDO_PROMPT", "review", "undo"]


def review(journal: Journal, run_id: str) -> JSONDict:
    """The run and its steps, each with what it changed and how it is undone."""
    return _view(RunView(run_id, journal=journal))


def undo(
    journal: Journal,
    run_id: str,
    *,
    calls: int | None = None,
    to_step: str | None = None,
    whole_run: bool = False,
    dry_run: bool = True,
) -> JSONDict:
    """Roll back the last `calls` tool calls, the steps after `to_step`, or the whole run.

    The run is the session's own and may still be active: it is rolled back `live` (the
    caller has checked that none of its tool calls is still running), which closes it.
    A rollback that stops (a conflict, an irreversible step) is reported, not raised. There
    is no `force` here: overriding a conflict (someone changed the same thing since) is for
    a person at `goex rollback --force`, not for the model.
    """
    chosen = sum((calls is not None, to_step is not None, whole_run))
    if chosen != 1:
        raise InvalidArgument("give exactly one of calls, to_step or whole_run=true")
    if to_step is not None:
        to_step = _end_of_call(journal, run_id, to_step)
    report: RollbackReport
    error: str | None = None
    try:
        report = rollback(
            run_id,
            steps=calls,
            to=to_step,
            journal=journal,
            dry_run=dry_run,
            live=True,
        )
    except RollbackFailed as exc:
        report, error = exc.report, str(exc)
    view = RunView(run_id, journal=journal, report=report, error=error)
    return {
        **_view(view),
        "dry_run": dry_run,
        "complete": report.complete and error is None,
        "outcome": view.outcome(),
        "report": report.model_dump(mode="json"),
    }


def _end_of_call(journal: Journal, run_id: str, step_id: str) -> str:
    """The last step of the tool call `step_id` names, if it names a call (its result's
    `goex/step_id`): its effects are journaled after it, and rolling back *to* a call keeps
    them. Any other step is itself."""
    steps = journal.steps(run_id)
    top = top_level(steps)
    if top.get(step_id) != step_id:
        return step_id
    return max((s for s in steps if top[s.id] == step_id), key=lambda s: s.seq or 0).id


def _view(view: RunView) -> JSONDict:
    steps = [
        {
            "number": number,
            "step_id": step.id,
            "tool": tool.strip(),
            "domain": domain,
            "status": status,
            "changed": changed,
            "undo": undo_summary,
            **({"detail": detail} if (detail := view.changes[step.id].detail) else {}),
        }
        for step, (number, tool, domain, status, changed, undo_summary) in zip(
            view.shown, view.rows(), strict=True
        )
    ]
    run = view.run
    data: JSONDict = {
        "run": {"id": run.id, "name": run.name, "status": run.status.value},
        "steps": steps,
        "text": repr(view),
    }
    redacted: JSONDict = redact(data)
    return redacted


REVIEW_PROMPT = """\
Below is everything the agent did through goex in this session, one numbered tool call per
line (sub-steps as N.1, N.2), with what each changed and how it can be undone.

{text}

Summarize for me, plainly, what changed: files (with the gist of each diff), database rows,
requests to web services. Point out anything that cannot be undone exactly. Then ask me which
tool calls, if any, I want undone. To undo, call goex_rollback with dry_run=true first, show me
what it would undo, and call it again with dry_run=false only after I confirm."""

UNDO_PROMPT = """\
Undo the last {calls} tool call(s) of this goex session: first call goex_rollback with
calls={calls} and dry_run=true, and show me what it would undo (each step, and any conflict or
step that cannot be undone). Only after I confirm, call goex_rollback with calls={calls} and
dry_run=false, then tell me whether everything was restored."""
