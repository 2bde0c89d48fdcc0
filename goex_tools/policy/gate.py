"""`Policy`: the gate every proposal passes before it is journaled or run.

    budgets -> rules (per domain) -> confinement (sandbox, network, rows) -> irreversibility
    (an LLM-proposed undo, verified in a test-bed, can make an action reversible) -> approval

The decision names the rule that decided (`Decision.rule`), with the file and line it is on,
and is journaled with the step, refused or not.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goex_tools.model import Compensation, Decision, JSONDict, Proposal, Reversibility, Step
from goex_tools.policy.approval import (
    ApprovalRequest,
    Approver,
    NoAnswer,
    approver_name,
    ask_within,
)
from goex_tools.policy.budget import RunBudgets
from goex_tools.policy.config import ApprovalMode, PolicyConfig, Verdict
from goex_tools.policy.rules import (
    Verdicted,
    evaluate_rules,
    fs_subjects,
    outside_workspace,
    strictest_of,
)
from goex_tools.policy.source import PolicySource, load_policy

if TYPE_CHECKING:
    from goex_tools.policy.llm_undo import UndoProposer
    from goex_tools.policy.testbed import Measured
    from goex_tools.runtime import RunContext

SandboxCheck = Callable[[str], bool]
DryRun = Callable[[Proposal], "Measured"]


class Policy:
    """A `goex_tools.runtime.Gate` built from a policy file (or a `PolicyConfig`).

    - `approver`: asked when a rule says `ask` or the approval mode requires it; without one,
      such actions are refused (never run unapproved).
    - `mode`: overrides the file's `approval` mode.
    - `approval_timeout`: overrides the file's `approval_timeout` (seconds the approver has;
      no answer refuses, and the step is journaled as refused).
    - `undo_proposer`: asked for an undo when an action has none (see `llm_undo`).
    - `sandbox_works(name)`: whether a sandbox backend works here (default: probe it).
    - `dry_run(proposal)`: what an SQL batch would change (rows, tables), measured on a
      throw-away state (default: `testbed.measure`), for `sql.max_rows_changed` and table
      rules.
    """

    def __init__(
        self,
        policy: PolicyConfig | PolicySource,
        *,
        approver: Approver | None = None,
        mode: ApprovalMode | None = None,
        undo_proposer: UndoProposer | None = None,
        sandbox_works: SandboxCheck | None = None,
        dry_run: DryRun | None = None,
        approval_timeout: float | None = None,
    ) -> None:
        self.source = policy if isinstance(policy, PolicySource) else None
        self.config = policy.config if isinstance(policy, PolicySource) else policy
        self.approver = approver
        self.mode: ApprovalMode = mode or self.config.approval
        self.approval_timeout = approval_timeout or self.config.approval_timeout
        self.undo_proposer = undo_proposer
        self._sandbox_works = sandbox_works or _default_sandbox_check
        self._dry_run = dry_run or _default_dry_run
        self._budgets = RunBudgets(self.config.budgets)

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Policy:
        """Load, validate (PolicyError naming file:line) and build the gate."""
        return cls(load_policy(path), **options)

    def decide(self, proposal: Proposal, run: RunContext) -> Decision:
        budgeted = self.config.budgets.any
        spent = self._budgets.spent(run, proposal) if budgeted else None
        if spent is None:
            decision = self._decide(proposal, run)
            if not (decision.allowed and budgeted):
                return decision
            spent = self._budgets.take_start(run, proposal)  # atomic: the quick look was not
            if spent is None:
                return decision
        return self._refuse(Verdicted("refuse", spent[0], spent[1], ("budgets",)))

    def charge(
        self, step: Step, effect: JSONDict, run: RunContext, *, charged: JSONDict, strict: bool
    ) -> JSONDict:
        """Meter what a step's effect uses against the run's budgets (see `policy.budget`)."""
        if not self.config.budgets.any:
            return charged
        return self._budgets.charge(step, effect, run, charged=charged, strict=strict)

    def _decide(self, proposal: Proposal, run: RunContext) -> Decision:
        verdict = evaluate_rules(self.config, proposal)
        if verdict.verdict == "refuse":  # a dry run is only worth trying if the rules allow
            return self._refuse(verdict)
        proposal, measured = self._measured(proposal)
        if isinstance(measured, Verdicted):
            return self._refuse(measured)
        if proposal.domain == "sql":  # the rules again, over the tables really reached
            verdict = strictest_of([verdict, evaluate_rules(self.config, proposal)]) or verdict
        if verdict.verdict != "refuse":
            verdict = strictest_of([verdict, *self._confinement(proposal, measured)]) or verdict
        if verdict.verdict == "refuse":
            return self._refuse(verdict)
        compensation: Compensation | None = None
        if proposal.reversibility is Reversibility.IRREVERSIBLE:
            compensation, irreversible = self._irreversible(proposal)
            if compensation is not None:
                verdict = replace(verdict, reason=f"{verdict.reason}; {compensation.description}")
            elif strictest_of([verdict, irreversible]) is irreversible:
                verdict = irreversible
                if verdict.verdict == "refuse":
                    return self._refuse(verdict)
            else:  # the rules are stricter; keep why there is no undo
                verdict = replace(verdict, reason=f"{verdict.reason}; {irreversible.reason}")
        if proposal.reversibility is Reversibility.SEMANTIC or compensation is not None:
            semantic = self._semantic(proposal, compensation)
            if strictest_of([verdict, semantic]) is semantic:
                verdict = semantic
                if verdict.verdict == "refuse":
                    return self._refuse(verdict)
        if verdict.verdict == "allow":
            verdict = self._mode_verdict(proposal, compensation) or verdict
        if verdict.verdict == "ask":
            return self._ask(proposal, run, verdict, compensation)
        return Decision(
            allowed=True, rule=verdict.rule, reason=self._reason(verdict), compensation=compensation
        )

    # the parts of a decision

    def _measured(self, proposal: Proposal) -> tuple[Proposal, Measured | Verdicted | None]:
        """For an SQL batch that may write, under table rules or a row limit: what a dry run
        finds it changes, with the tables it changed added to what the rules see."""
        sql = self.config.sql
        statements = proposal.predicted.get("statements") or []
        writes = any(s.get("kind") != "read" for s in statements) or not statements
        tables = any(r.tables is not None for r in sql.rules)
        wanted = sql.max_rows_changed is not None or tables
        unknown = bool(proposal.predicted.get("unknown_functions"))
        if proposal.domain != "sql" or not wanted:
            return proposal, None
        predicted = dict(proposal.predicted)
        measured: Measured | None = None
        try:
            if tables:
                from goex_tools.policy.testbed import views_read

                predicted["view_tables"] = views_read(proposal)
            if writes or unknown:
                measured = self._dry_run(proposal)
                predicted["changed_tables"] = measured.tables
                if measured.tables is None:
                    predicted["changed_tables_unknown"] = measured.why
        except Exception as exc:
            return proposal, Verdicted(
                "refuse", "sql.dry_run", f"the dry run failed: {exc}", ("sql",)
            )
        return proposal.model_copy(update={"predicted": predicted}), measured

    def _confinement(self, proposal: Proposal, measured: Measured | None = None) -> list[Verdicted]:
        found: list[Verdicted] = []
        p = proposal.predicted
        if proposal.domain == "fs":
            for subject in fs_subjects(proposal):
                if "path" in subject and outside_workspace(subject["path"]):
                    found.append(
                        Verdicted(
                            "refuse",
                            "fs.workspace",
                            f"path {subject['path']!r} is outside the workspace",
                        )
                    )
            if "command" in p or proposal.tool == "run_shell":
                found.extend(self._shell_confinement(p))
                found.extend(self._past_ceilings(proposal))
        limit = self.config.sql.max_rows_changed
        if proposal.domain == "sql" and limit is not None and measured is not None:
            found.extend(self._row_limit(measured, limit))
        return found

    def _shell_confinement(self, predicted: dict[str, Any]) -> list[Verdicted]:
        found = []
        if predicted.get("network"):
            found.append(
                Verdicted(
                    self.config.fs.network,
                    "fs.network",
                    "the command asks for network access",
                    ("fs", "network"),
                )
            )
        if self.config.fs.require_sandbox:
            backend = str(predicted.get("sandbox") or "none")
            if backend == "none":
                found.append(
                    Verdicted(
                        "refuse",
                        "fs.require_sandbox",
                        "the command would run without a sandbox",
                        ("fs", "require_sandbox"),
                    )
                )
            elif not self._sandbox_works(backend):
                found.append(
                    Verdicted(
                        "refuse",
                        "fs.require_sandbox",
                        f"the {backend} sandbox does not work on this machine (see `goex doctor`)",
                        ("fs", "require_sandbox"),
                    )
                )
        images, image = self.config.fs.images, predicted.get("image")
        if image is not None and images is not None and not _named(images, str(image)):
            why = f"the command would run in the image {image}, which fs.images does not name"
            found.append(Verdicted("refuse", "fs.images", why, ("fs", "images")))
        return found

    def _past_ceilings(self, proposal: Proposal) -> list[Verdicted]:
        """A refusal for each limit the command asks more of than `fs.limits` allows (the
        timeout is an input; the rest are predicted), or does not state at all."""
        asked = dict(proposal.predicted.get("limits") or {})
        asked["timeout"] = proposal.inputs.get("timeout")
        found = []
        for name, ceiling in self.config.fs.limits.model_dump(exclude_none=True).items():
            value = asked.get(name)
            if value is not None and value <= ceiling:
                continue
            wanted = "does not state it" if value is None else f"asks for {value:g}"
            found.append(
                Verdicted(
                    "refuse",
                    f"fs.limits.{name}",
                    f"the command's {name} limit: it {wanted}, the policy allows at most "
                    f"{ceiling:g} (set Workspace(limits=...) within it)",
                    ("fs", "limits", name),
                )
            )
        return found

    def _row_limit(self, measured: Measured, limit: int) -> list[Verdicted]:
        where = ("sql", "max_rows_changed")
        if measured.rows is None:
            why = measured.why or "they cannot be measured here"
            return [Verdicted("refuse", "sql.max_rows_changed", f"rows changed: {why}", where)]
        if measured.rows > limit:
            return [
                Verdicted(
                    "refuse",
                    "sql.max_rows_changed",
                    f"would change {measured.rows} rows (limit {limit})",
                    where,
                )
            ]
        return []

    def _irreversible(self, proposal: Proposal) -> tuple[Compensation | None, Verdicted]:
        """An undo from the proposer, verified; else the file's verdict on irreversible actions."""
        note = ""
        if self.undo_proposer is not None and self.config.llm_undo:
            try:
                outcome = self.undo_proposer.propose(proposal)
            except Exception as exc:  # a model or test-bed failure means: no trusted undo
                note = f"; the undo proposer failed: {type(exc).__name__}: {exc}"
            else:
                if outcome.compensation is not None:
                    return outcome.compensation, Verdicted("allow", "llm_undo", outcome.reason)
                note = f"; proposed undo rejected: {outcome.reason}"
        return None, Verdicted(
            self.config.irreversible,
            "irreversible",
            f"{proposal.tool} cannot be undone{note}",
            ("irreversible",),
        )

    def _semantic(self, proposal: Proposal, found: Compensation | None) -> Verdicted:
        """The file's verdict on an action whose undo only approximates (`semantic`): a
        label the domain gave, or an undo the proposer found for an irreversible action."""
        undo = found or proposal.compensation
        what = f": {undo.description or undo.kind}" if undo is not None else ""
        return Verdicted(
            self.config.semantic,
            "semantic",
            f"{proposal.tool} can only be undone semantically{what}",
            ("semantic",),
        )

    def _mode_verdict(
        self, proposal: Proposal, compensation: Compensation | None
    ) -> Verdicted | None:
        if self.mode == "confirm-all":
            return Verdicted(
                "ask", "approval:confirm-all", "every action is confirmed", ("approval",)
            )
        if (
            self.mode == "confirm-irreversible"
            and proposal.reversibility is Reversibility.IRREVERSIBLE
            and compensation is None
        ):
            return Verdicted(
                "ask",
                "approval:confirm-irreversible",
                f"{proposal.tool} cannot be undone",
                ("approval",),
            )
        return None

    def _ask(
        self,
        proposal: Proposal,
        run: RunContext,
        verdict: Verdicted,
        compensation: Compensation | None,
    ) -> Decision:
        if self.approver is None:
            return self._refuse(verdict, "needs approval, and no approver is set")
        shown = proposal
        if compensation is not None:
            shown = proposal.model_copy(
                update={"compensation": compensation, "reversibility": Reversibility.SEMANTIC}
            )
        request = ApprovalRequest(
            shown, run.id, verdict.rule, self._reason(verdict), journal=run.journal
        )
        who = approver_name(self.approver)
        try:
            approved = ask_within(self.approver, request, self.approval_timeout)
        except NoAnswer as silent:  # an approver that does not answer has not approved
            return self._refuse(verdict, str(silent))
        except Exception as exc:  # an approver that breaks has not approved
            return self._refuse(verdict, f"the approver {who} failed: {type(exc).__name__}: {exc}")
        if approved:
            return Decision(
                allowed=True,
                rule=verdict.rule,
                reason=self._reason(verdict),
                approved_by=who,
                compensation=compensation,
            )
        return self._refuse(verdict, f"refused by {who}")

    def _refuse(self, verdict: Verdicted, why: str = "") -> Decision:
        reason = self._reason(verdict) + (f"; {why}" if why else "")
        return Decision(allowed=False, rule=verdict.rule, reason=reason)

    def _reason(self, verdict: Verdicted) -> str:
        if self.source is None or not verdict.loc:
            return verdict.reason
        return f"{verdict.reason} ({self.source.where(*verdict.loc)})"


def _named(globs: list[str], image: str) -> bool:
    return any(fnmatch.fnmatchcase(image, glob) for glob in globs)


def _default_sandbox_check(backend: str) -> bool:
    from goex_tools.policy.doctor import sandbox_works

    return sandbox_works(backend)


def _default_dry_run(proposal: Proposal) -> Measured:
    from goex_tools.policy.testbed import measure

    return measure(proposal)


__all__ = ["Policy", "Verdict"]
