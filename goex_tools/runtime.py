"""Runs and the step lifecycle every effect goes through.

    classify (a Proposal) -> decide (Gate) -> journal pending -> execute -> journal applied
                                                                         \\-> journal failed

Domains build a `Proposal` and hand their effect to `execute`; they never write the journal
themselves. The current run and the current parent step live in context variables, so a tool
called inside another step's effect is journaled as its child.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from goex_tools.errors import ActionRefused, BudgetSpent, JournalError, RunClosed
from goex_tools.journal import Journal
from goex_tools.journal import get_journal as get_journal  # its old home; still importable
from goex_tools.model import (
    Compensation,
    Decision,
    JSONDict,
    Proposal,
    Reversibility,
    Run,
    RunStatus,
    Step,
    StepStatus,
)
from goex_tools.owner import owner_tag as owner_tag  # re-exported: its old home
from goex_tools.redaction import redact
from goex_tools.registry import EffectState, registry

__all__ = [
    "OUTPUT_LIMIT",
    "Gate",
    "RunContext",
    "StepHandle",
    "activate",
    "current_run",
    "current_step_id",
    "execute",
    "get_journal",
    "is_pause",
    "owner_tag",
    "parent_step",
    "register_pause",
    "run",
    "summarize",
]

T = TypeVar("T")
OUTPUT_LIMIT = 4000  # characters of a result kept in the journal

_current_run: ContextVar[RunContext | None] = ContextVar("goex_run", default=None)
_current_parent: ContextVar[str | None] = ContextVar("goex_parent_step", default=None)
_pauses: tuple[type[BaseException], ...] = ()


def register_pause(kind: type[BaseException]) -> None:
    """Make `kind` a pause: the exception a framework raises to suspend a call it replays on
    resume (LangGraph's `GraphInterrupt`, LlamaIndex's `WaitingForEvent`). Integrations
    register theirs on import, so that the core imports no framework."""
    global _pauses
    if kind not in _pauses:
        _pauses = (*_pauses, kind)


def is_pause(exc: BaseException) -> bool:
    """True for an exception registered with `register_pause`."""
    return isinstance(exc, _pauses)


class Gate(Protocol):
    """Decides on a proposal before anything runs: policy, approval, budgets.

    A gate may also have `charge(step, effect, run, *, charged, strict) -> charged`: it then
    meters what a step's effect uses (rows, bytes) against the run's budgets, see
    `StepHandle.charge`.
    """

    def decide(self, proposal: Proposal, run: RunContext) -> Decision: ...


class StepHandle:
    """A journaled step whose effect is under way.

    The effect may refine its compensation (e.g. the id a POST returned), describe what it did
    (`effect`), add notes, or `hold()` the step for a person to keep or discard.
    """

    def __init__(self, run: RunContext, step: Step) -> None:
        self.run = run
        self.step = step
        self.compensation: Compensation | None = step.compensation
        self._journaled = step.compensation  # the compensation the journal holds
        self.effect: JSONDict = dict(step.effect)
        self.notes: list[str] = list(step.notes)
        self.output: Any = None
        self.held = False
        self._charged: JSONDict = {}  # what the gate has metered of this step's effect

    @property
    def id(self) -> str:
        return self.step.id

    def set_compensation(self, compensation: Compensation | None) -> None:
        if compensation is not None and compensation.unavailable is None:
            registry.validate(compensation)
        self.compensation = compensation

    def save(self, detail: str = "undo recorded before the effect") -> None:
        """Journal the refined compensation, effect and notes while the step is still pending.

        A domain that learns its undo before applying the effect (the paths a command changed,
        the rows a statement will touch) saves it first, so that recovery after a crash in the
        middle of applying can probe and undo it.
        """
        self.step = self.run.journal.transition(
            self.step.id,
            StepStatus.PENDING,
            expect=[StepStatus.PENDING],
            detail=detail,
            effect=self.effect,
            compensation=self.compensation,
            notes=self.notes,
        )
        self._journaled = self.compensation

    def charge(self) -> None:
        """Call once `effect` says what the step will use (rows changed, bytes written) and
        before any of it becomes permanent: the run's gate takes it from the run's budgets.

        Raises BudgetSpent if they cannot cover it: the domain must then apply nothing, and
        the step is journaled as refused. Usage a domain never charged is counted when the
        step ends (it may overshoot a budget).
        """
        self._charged = self._meter(strict=True)

    def _meter(self, *, strict: bool) -> JSONDict:
        charge = getattr(self.run.gate, "charge", None)
        if charge is None:
            return self._charged
        charged: JSONDict = charge(
            self.step, self.effect, self.run, charged=self._charged, strict=strict
        )
        return charged

    def hold(self) -> None:
        """Leave the effect tentative: journaled as `held` until kept or discarded."""
        self.held = True

    def finish(self, result: Any = None) -> Step:
        """Journal the effect as done (applied, irreversible or held)."""
        if self.held:
            status = StepStatus.HELD
        elif self.step.reversibility is Reversibility.IRREVERSIBLE:
            status = StepStatus.IRREVERSIBLE
        else:
            status = StepStatus.APPLIED
        output = self.output if self.output is not None else summarize(result)
        self._charged = self._meter(strict=False)
        try:
            self.step = self.run.journal.transition(
                self.step.id,
                status,
                expect=[StepStatus.PENDING],
                output=output,
                effect=self.effect,
                compensation=self._unjournaled(),
                notes=self.notes,
            )
        except JournalError as exc:
            raise type(exc)(
                f"{exc}; {self.step.tool} ran, but the journal could not record that: its "
                f"step {self.step.id} stays pending until `goex recover` resolves it"
            ) from exc
        return self.step

    def _unjournaled(self) -> Compensation | None:
        """The compensation if the journal does not hold it yet (an undo saved before the
        effect can be large, e.g. every row a statement changed: it is not written twice)."""
        return None if self.compensation is self._journaled else self.compensation

    def fail(self, exc: BaseException) -> Step | None:
        """Journal the effect as failed, unless the domain's probe says it happened anyway.

        A pause (`is_pause`) is not a failure: the framework replays the call on resume, and
        that replay is journaled as its own step. A paused step is withdrawn (None returned)
        unless something was journaled under it or its probe says it happened; a container
        with children is then finished, its children saying what the call did before pausing.
        """
        if isinstance(exc, BudgetSpent) and exc.step_id == self.id:
            return self._refused(exc)
        error = redact(f"{type(exc).__name__}: {exc}")
        self._charged = self._meter(strict=False)  # a failed effect may have used some
        if self.compensation is not None and _probe(self) is EffectState.HAPPENED:
            self.notes.append(f"raised {error}, but its effect happened; it can be undone")
            return self.finish(None)
        if is_pause(exc):
            if self.run.journal.withdraw(self.step.id):
                return None
            self.notes.append(
                f"paused by {type(exc).__name__} after the steps under it; the framework runs "
                f"the call again when it resumes"
            )
            if self.step.reversibility is Reversibility.CONTAINER:
                return self.finish(None)
        self.step = self.run.journal.transition(
            self.step.id,
            StepStatus.FAILED,
            expect=[StepStatus.PENDING],
            error=error,
            effect=self.effect,
            notes=self.notes,
        )
        return self.step

    def _refused(self, exc: BudgetSpent) -> Step:
        """A budget refused the step at `charge`, before its effect: nothing was applied."""
        self.step = self.run.journal.transition(
            self.step.id,
            StepStatus.REFUSED,
            expect=[StepStatus.PENDING],
            detail=f"refused by {exc.rule}",
            error=exc.reason,
            effect={  # what it would have done, kept apart from what steps did
                **{k: v for k, v in self.effect.items() if k == "predicted"},
                "not_applied": {k: v for k, v in self.effect.items() if k != "predicted"},
            },
            decision=Decision(allowed=False, rule=exc.rule, reason=exc.reason),
            notes=self.notes,
        )
        return self.step


class RunContext:
    """A run being recorded: the journal it writes to and the gate its actions pass."""

    def __init__(self, journal: Journal, run: Run, gate: Gate | None = None) -> None:
        self.journal = journal
        self.run = run
        self.gate = gate

    @property
    def id(self) -> str:
        return self.run.id

    def steps(self) -> list[Step]:
        return self.journal.steps(self.run.id)

    def begin(
        self,
        proposal: Proposal,
        *,
        step_id: str | None = None,
        parent_id: str | None = None,
    ) -> StepHandle:
        """Decide on a proposal and journal it as pending. Raises ActionRefused if refused."""
        if proposal.compensation is not None:
            registry.validate(proposal.compensation)
        decision = self.gate.decide(proposal, self) if self.gate else Decision(allowed=True)
        if decision.allowed and decision.compensation is not None and proposal.compensation is None:
            registry.validate(decision.compensation)
            proposal = proposal.model_copy(  # an undo found for an action that had none
                update={  # (an LLM's, tested) is not proven to restore everything: semantic
                    "compensation": decision.compensation,
                    "reversibility": Reversibility.SEMANTIC,
                    "notes": [*proposal.notes, f"undo supplied by the gate: {decision.reason}"],
                }
            )
        fields: JSONDict = {
            "run_id": self.run.id,
            "parent_id": parent_id if parent_id is not None else _current_parent.get(),
            "tool": proposal.tool,
            "domain": proposal.domain,
            "inputs": proposal.inputs,
            "effect": {"predicted": proposal.predicted} if proposal.predicted else {},
            "compensation": proposal.compensation,
            "reversibility": proposal.reversibility,
            "decision": decision,
            "notes": list(proposal.notes),
            "owner": owner_tag(),
        }
        if step_id is not None:
            fields["id"] = step_id
        if not decision.allowed:
            refused = Step(status=StepStatus.REFUSED, **fields)
            refused = refused.model_copy(update={"error": decision.reason})
            self.journal.add_step(refused, detail=f"refused by {decision.rule}")
            raise ActionRefused(
                redact(f"{proposal.tool} refused by rule {decision.rule!r}: {decision.reason}")
            )
        try:
            step = self.journal.add_step(Step(status=StepStatus.PENDING, **fields))
        except (JournalError, RunClosed) as exc:  # nothing is journaled, so nothing may run
            raise type(exc)(f"{exc}; {proposal.tool} did not run") from exc
        return StepHandle(self, step)

    def execute(
        self,
        proposal: Proposal,
        effect: Callable[[StepHandle], T],
        *,
        parent_id: str | None = None,
    ) -> T:
        """Run `effect` through the whole lifecycle and return its result."""
        handle = self.begin(proposal, parent_id=parent_id)
        token = _current_parent.set(handle.id)
        try:
            result = effect(handle)
        except Exception as exc:
            handle.fail(exc)
            raise
        finally:
            _current_parent.reset(token)
        handle.finish(result)
        return result

    def end(self, status: RunStatus = RunStatus.COMPLETED) -> None:
        """Mark the run ended, unless a rollback closed it meanwhile (it stays closed)."""
        self.journal.end_run(self.run.id, status)


@contextmanager
def run(
    name: str = "",
    *,
    run_id: str | None = None,
    journal: Journal | str | None = None,
    gate: Gate | None = None,
    metadata: JSONDict | None = None,
) -> Iterator[RunContext]:
    """Record everything inside the block as one run (or continue the run `run_id`)."""
    store = get_journal(journal)
    record = Run(name=name, metadata=metadata or {})
    if run_id is not None:
        record = record.model_copy(update={"id": run_id})
    ctx = RunContext(store, store.ensure_run(record), gate)
    token = _current_run.set(ctx)
    try:
        yield ctx
    except BaseException:
        with suppress(JournalError):  # the block's own error says more
            ctx.end(RunStatus.FAILED)
        raise
    else:
        ctx.end(RunStatus.COMPLETED)
    finally:
        _current_run.reset(token)


def current_run() -> RunContext | None:
    """The run the caller is inside (`with goex.run(...)`), or None."""
    return _current_run.get()


@contextmanager
def activate(ctx: RunContext, parent_id: str | None = None) -> Iterator[RunContext]:
    """Make `ctx` the current run (and `parent_id` the current parent step) inside the block.

    Unlike `run()`, it neither starts nor ends the run: framework adapters whose runs begin
    and end in callbacks use it to journal a tool's steps into the run that called the tool.
    """
    run_token = _current_run.set(ctx)
    parent_token = _current_parent.set(parent_id)
    try:
        yield ctx
    finally:
        _current_parent.reset(parent_token)
        _current_run.reset(run_token)


def current_step_id() -> str | None:
    """The step whose effect is running in this context, if any."""
    return _current_parent.get()


@contextmanager
def parent_step(step_id: str | None) -> Iterator[None]:
    """Journal steps made inside the block as children of `step_id` (for framework adapters)."""
    token = _current_parent.set(step_id)
    try:
        yield
    finally:
        _current_parent.reset(token)


def execute(proposal: Proposal, effect: Callable[[StepHandle], T]) -> T:
    """Execute in the current run, or in a run of its own when none is active."""
    ctx = current_run()
    if ctx is not None:
        return ctx.execute(proposal, effect)
    with run(proposal.tool) as adhoc:
        return adhoc.execute(proposal, effect)


def summarize(value: Any, limit: int = OUTPUT_LIMIT) -> Any:
    """A JSON-safe, size-limited form of a result, fit for the journal."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) <= limit:
        return json.loads(text)
    return {"truncated": True, "size": len(text), "head": text[:limit]}


def _probe(handle: StepHandle) -> EffectState:
    assert handle.compensation is not None
    handler = registry.get(handle.compensation.kind)
    if handler.probe is None:
        return EffectState.UNKNOWN
    probing = handle.step.model_copy(update={"compensation": handle.compensation})
    try:
        return handler.probe(probing)
    except Exception:
        return EffectState.UNKNOWN
