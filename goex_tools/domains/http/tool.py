"""The `http_request` tool: classify a REST call, then send it through the step lifecycle.

Before anything is sent the call is classified, in order of trust: a registered undo rule,
a rule inferred from the service's OpenAPI document, an undo proposed by an LLM and verified
by the caller's verifier; otherwise it is irreversible. Reads (GET, HEAD, OPTIONS) have no
effect. Policy and approval hooks see the classification in `Proposal.predicted`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode, urljoin

from pydantic import ValidationError

from goex_tools.domains.http.before import Before, Fields, find_id, journalable, read_before
from goex_tools.domains.http.call import SAFE_METHODS, HttpCall, HttpResult, not_json
from goex_tools.domains.http.errors import HttpError, InvalidHttpCall
from goex_tools.domains.http.fields import SERVER_MANAGED, get, kept_by_service, project, split
from goex_tools.domains.http.fields import found as fields_found
from goex_tools.domains.http.rules import RuleMatch, UndoRule, UndoRules, match_template
from goex_tools.domains.http.send import (
    DEFAULT_TIMEOUT,
    State,
    client_for,
    open_response,
    read_state,
    result_of,
    status_error,
)
from goex_tools.domains.http.undo import ChildState, UndoCall, revert, unavailable, view
from goex_tools.model import Compensation, Proposal, Reversibility
from goex_tools.redaction import MASK, redact
from goex_tools.runtime import StepHandle, execute
from goex_tools.secrets import SecretStore, default_store, placeholders

TOOL = "http_request"
DEFAULT_MAX_BODY = 64 * 1024  # bytes of a response body shown to the model

UndoProposer = Callable[[HttpCall], Compensation | None]
"""Proposes an undo for a call no rule covers (e.g. by asking an LLM); None if it has none."""
UndoVerifier = Callable[[HttpCall, Compensation], bool]
"""Says whether a proposed undo was verified (e.g. tested against a copy of the service)."""

Source = Literal["registered", "openapi", "llm"]


@dataclass(frozen=True)
class Plan:
    """How a call will be undone, decided before it is sent."""

    action: Literal["read", "create", "update", "delete", "irreversible", "llm"]
    source: Source | None
    match: RuleMatch | None = None
    compensation: Compensation | None = None
    note: str = ""


class HttpTool:
    """Sends REST calls as reversible, journaled steps.

    `rules` holds registered and OpenAPI-inferred undo rules; `proposer` and `verifier` are
    the hook for LLM-proposed undos (both are needed: an unverified proposal is not used).
    """

    def __init__(
        self,
        rules: UndoRules | None = None,
        *,
        secrets: SecretStore | None = None,
        proposer: UndoProposer | None = None,
        verifier: UndoVerifier | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.rules = rules if rules is not None else UndoRules()
        self.secrets = secrets
        self.proposer = proposer
        self.verifier = verifier
        self.timeout = timeout
        self.max_body = max_body

    @property
    def store(self) -> SecretStore:
        return self.secrets if self.secrets is not None else default_store()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> HttpResult:
        """Send a call (secrets as `{{secret:NAME}}`) and return its redacted result.

        Raises ActionRefused if policy refuses it or a secret is not bound to the URL's host,
        and HttpError (redacted) if it cannot be sent or the service answers an error status.
        """
        call = parse_call(method, url, headers, json)
        plan = self.plan(call)
        proposal = self.proposal(call, plan)
        return execute(proposal, lambda handle: self._effect(handle, call, plan))

    def classify(
        self, method: str, url: str, headers: dict[str, str] | None = None, json: Any = None
    ) -> Proposal:
        """The proposal a call would be journaled with; nothing is sent."""
        call = parse_call(method, url, headers, json)
        return self.proposal(call, self.plan(call))

    def plan(self, call: HttpCall) -> Plan:
        self.store.check(placeholders(call.inputs()), call.host, call.port)
        if call.method in SAFE_METHODS:
            return Plan("read", None)
        found = self.rules.match(call.method, call.url)
        if found is not None and found.rule.action == "irreversible":
            note = f"{call.method} {call.path} is {found.rule.source} as irreversible"
            return Plan("irreversible", None, match=found, note=note)
        if found is not None and _sets(call.body, found.rule.irreversible_if):
            shown = ", ".join(f"{k}={v!r}" for k, v in found.rule.irreversible_if.items())
            note = f"{call.method} {call.path} with {shown} is {found.rule.source} as irreversible"
            return Plan("irreversible", None, match=found, note=note)
        uncovered = _uncovered(call.body, found.rule.covers) if found is not None else []
        if found is not None and uncovered:
            note = (
                f"{call.method} {call.path} sets {', '.join(uncovered)}, which its undo does "
                f"not restore (it restores {', '.join(found.rule.covers or []) or 'nothing'})"
            )
            return Plan("irreversible", None, match=found, note=note)
        if found is not None:
            return _write_only_plan(call, found) or Plan(
                found.rule.action, found.rule.source, match=found
            )
        return self._llm_plan(call)

    def _llm_plan(self, call: HttpCall) -> Plan:
        uncovered = f"no registered pair or OpenAPI operation covers {call.method} {call.path}"
        if self.proposer is None:
            return Plan("irreversible", None, note=uncovered)
        candidate = self.proposer(call)
        if candidate is None:
            return Plan("irreversible", None, note=f"{uncovered}; the proposer had no undo")
        if self.verifier is None or not self.verifier(call, candidate):
            return Plan(
                "irreversible",
                None,
                note=f"{uncovered}; the proposed undo ({candidate.kind}) was not verified",
            )
        return Plan("llm", "llm", compensation=candidate, note="undo proposed by an LLM, verified")

    def proposal(self, call: HttpCall, plan: Plan) -> Proposal:
        reversibility = {
            "read": Reversibility.NO_EFFECT,
            "irreversible": Reversibility.IRREVERSIBLE,
            "llm": Reversibility.SEMANTIC,  # tested, not proven to restore everything
        }.get(plan.action, Reversibility.EXACT)
        if plan.match is not None and plan.match.rule.exactness == "semantic":
            reversibility = Reversibility.SEMANTIC
        return Proposal(
            tool=TOOL,
            domain="http",
            inputs=call.inputs(),
            reversibility=reversibility,
            compensation=plan.compensation or _template(call, plan, self.timeout),
            predicted={
                "method": call.method,
                "url": call.url,
                "host": call.host,
                "path": call.path,
                "compensation_source": plan.source,
                "action": plan.action,
            },
            notes=[plan.note] if plan.note else [],
        )

    def _effect(self, handle: StepHandle, call: HttpCall, plan: Plan) -> HttpResult:
        client = client_for(self.timeout)
        before = self._before(client, call, plan)
        if before is not None:
            self._set_undo(handle, call, plan, before, None, None)
            handle.save()
        try:
            result = result_of(open_response(client, call, self.store), self.max_body)
            handle.effect["status_code"] = result.status_code
            if not 200 <= result.status_code < 300:
                raise status_error(call, result.status_code, result.body)
        except HttpError:
            if before is not None and plan.action != "delete":
                # an error or a lost answer does not prove nothing changed: record what
                # the resource is now, so the runtime's probe can tell
                after = self._after(client, before.url, call, plan)
                self._set_undo(handle, call, plan, before, after, None)
            raise
        if before is not None:
            after = self._after(client, before.url, call, plan)
            self._set_undo(handle, call, plan, before, after, result.status_code)
        elif plan.action == "create":
            self._set_create_undo(handle, client, call, plan, result)
        if plan.action in ("create", "update", "delete"):
            handle.save("undo completed with the state the call left")  # for recovery
        return result

    def _before(self, client: Any, call: HttpCall, plan: Plan) -> Before | None:
        """The state to return to, read before sending: the call's URL for an update or a
        delete; for a create naming its id, the resource it would create, which may exist
        (then the call is undone as an update of it)."""
        if plan.match is None or plan.action not in ("create", "update", "delete"):
            return None
        rule = plan.match.rule
        if plan.action != "create":
            return read_before(
                client,
                self.store,
                _state_url(plan.match, call, call.url),
                call.headers,
                plan.action,
                rule,
                call.method == "PUT",
            )
        param = plan.match.new_id_param()
        named = find_id(call.body, rule.id_field, param)
        if named is None or rule.item_url is None or param is None:
            return None
        if rule.state_url is not None:  # e.g. a git ref: the service refuses to create it twice
            return None
        target = plan.match.fill(rule.item_url, **{param: quote(str(named[1]), safe="")})
        state = read_state(client, target, call.headers, self.store)
        if not state.exists:
            return None
        return read_before(client, self.store, target, call.headers, "update", rule, put=False)

    def _after(self, client: Any, url: str, call: HttpCall, plan: Plan) -> State | None:
        assert plan.match is not None
        return self._read_after(client, url, call.headers, plan.match.rule.project)

    def _set_undo(
        self,
        handle: StepHandle,
        call: HttpCall,
        plan: Plan,
        before: Before,
        after: State | None,
        status: int | None,
    ) -> None:
        """Journal how to return the resource at `before.url` to the state read before."""
        assert plan.match is not None
        rule, url, fields = plan.match.rule, before.url, Fields.of(plan.match.rule)
        if before.problem is not None:
            _no_undo(handle, before.problem)
            return
        state = before.state
        if state is None and status == 201:
            state = State(exists=False)  # the service says the PUT created it
        if state is None:
            _no_undo(
                handle,
                f"{url} could not be read before the call (403): unless the service answers "
                f"201 Created, what the call replaced is unknown",
            )
            return
        if plan.action == "update" and state.exists and after is not None and not after.exists:
            _no_undo(
                handle,
                f"after the call {url} is gone: the call moved or deleted it, and where it "
                f"went is unknown",
            )
            return
        sent = call.body if url == call.url and not rule.project else None
        if after is not None and after.exists:
            keep = kept_by_service(sent, after.body, SERVER_MANAGED)
        else:  # unknown: whatever the call set is compared
            keep = fields_found(sent, SERVER_MANAGED)
        home = url  # where the undo is sent: the resource read, or the rule's restore_url
        if rule.restore_url is not None:
            home = plan.match.fill(rule.restore_url)
        elif rule.state_url is not None:
            home = plan.match.fill(rule.url)  # the call's resource, `{+name}` as one segment
        extra = _undo_extra(rule, call)
        if not state.exists:  # the call creates what was absent
            undo = UndoCall(method="DELETE", url=home, json_body=extra or None)
        elif plan.action == "delete":
            target = plan.match.fill(rule.recreate_url) if rule.recreate_url else home
            body = _merged(fields.restore_body(state, []), extra)
            undo = UndoCall(method=rule.recreate_method, url=target, json_body=body)
        else:
            method = rule.restore_method
            if fields_found(state.body, fields.write_only):
                method = "PATCH"  # read_before made sure the rule takes it
            body = _merged(fields.restore_body(state, keep), extra)
            undo = UndoCall(method=method, url=home, json_body=body)
        left = State(exists=False) if plan.action == "delete" else after
        handle.set_compensation(
            revert(
                undo,
                headers=call.headers,
                check_url=url,
                before=fields.journaled(state),
                after=fields.journaled(left) if left is not None else None,
                ignore_fields=fields.ignore,
                keep_fields=keep,
                write_only=fields.write_only,
                children=before.children,
                description=f"{undo.method} {undo.url} back to the state read before "
                f"{call.method} ({plan.source})"
                + (f", and {_count(before.children)} items under it" if before.children else ""),
                timeout=self.timeout,
                project=rule.project,
                precondition_field=rule.precondition_field,
            )
        )

    def _set_create_undo(
        self,
        handle: StepHandle,
        client: Any,
        call: HttpCall,
        plan: Plan,
        result: HttpResult,
    ) -> None:
        """Journal `DELETE item_url` with the id the response carried."""
        assert plan.match is not None
        rule = plan.match.rule
        assert rule.item_url is not None
        fields = Fields.of(rule)
        created = _created_url(plan.match, result)
        if created is None:
            _no_undo(
                handle,
                f"the response carried neither {_id_names(plan.match)} nor a Location header, "
                f"so what the call created cannot be found",
            )
            return
        item_url, id_at = created
        check = item_url
        if rule.state_url is not None:
            check = RuleMatch(rule, match_template(rule.item_url, item_url) or {}).fill(
                rule.state_url
            )
        after = self._read_after(client, check, call.headers)
        if id_at is not None and (after is None or _id_at(after.body, id_at) != id_at[1]):
            _no_undo(
                handle,
                f"{item_url}, where the id `{id_at[0]}` of the response points, does not "
                f"show that id, so what the call created cannot be told apart",
            )
            return
        after = view(after, rule.project) if after is not None else None
        if rule.close_with is not None:  # the service cannot delete it: close it
            target = State(exists=True, body=project(rule.close_with, _same_names(rule)))
            undo = UndoCall(method="PATCH", url=item_url, json_body=rule.close_with)
            what = f"PATCH {item_url} with {_shown(rule.close_with)} (it cannot be deleted)"
        else:
            target = State(exists=False)
            extra = _undo_extra(rule, call)
            undo = UndoCall(method="DELETE", url=item_url, json_body=extra or None)
            what = f"DELETE {item_url}"
        handle.set_compensation(
            revert(
                undo,
                headers=call.headers,
                check_url=check,
                before=target,
                after=fields.journaled(after) if after is not None else None,
                ignore_fields=fields.ignore,
                write_only=fields.write_only,
                description=f"{what}, created by {call.method} {call.url} ({plan.source})",
                timeout=self.timeout,
                project=rule.project,
                precondition_field=rule.precondition_field,
            )
        )

    def _read_after(
        self, client: Any, url: str, headers: dict[str, str], fields: dict[str, str] | None = None
    ) -> State | None:
        """The state the call left (as `fields` names it), or None (unknown: conflicts go
        unchecked) if unreadable."""
        try:
            after = view(read_state(client, url, headers, self.store), fields or {})
        except HttpError:
            return None
        return after if journalable(after) else None


def _write_only_plan(call: HttpCall, found: RuleMatch) -> Plan | None:
    """Irreversible, if undoing the call would need a value the service never gives back."""
    rule = found.rule
    patterns = Fields.of(rule).write_only
    if rule.action == "update":
        sets = fields_found(call.body, patterns)
        if sets:
            return Plan(
                "irreversible",
                None,
                match=found,
                note=f"{call.method} {call.path} sets {', '.join(sets)}, which the service "
                f"never gives back as set (write-only): the value it replaces cannot be restored",
            )
    if rule.action == "delete" and rule.write_only:
        return Plan(
            "irreversible",
            None,
            match=found,
            note=f"re-creating {call.path} would need {', '.join(rule.write_only)}, which the "
            f"service never gives back as set (write-only)",
        )
    return None


def _count(children: list[ChildState]) -> int:
    return sum(1 + _count(c.children) for c in children)


def _id_names(match: RuleMatch) -> str:
    rule = match.rule
    if rule.id_field:
        return f"`{rule.id_field}`"
    return " or ".join(f"`{n}`" for n in dict.fromkeys([match.new_id_param() or "id", "id"]))


def _id_at(body: Any, id_at: tuple[str, Any]) -> Any:
    try:
        return get(body, split(id_at[0]))
    except KeyError:
        return None


def _created_url(match: RuleMatch, result: HttpResult) -> tuple[str, tuple[str, Any] | None] | None:
    """Where the created resource lives: `item_url` with the response's id (and, when the id
    was not named by the rule but found, where it was found), or its Location."""
    rule = match.rule
    assert rule.item_url is not None
    param = match.new_id_param()
    named = find_id(result.body, rule.id_field, param)
    if named is not None and param is not None and MASK not in str(named[1]):
        new_id = str(named[1]).removeprefix(rule.id_prefix)
        url = match.fill(rule.item_url, **{param: quote(new_id, safe="")})
        return url, None if rule.id_field else named
    location = result.headers.get("location")
    if location and MASK not in location:
        url = urljoin(rule.url, location)
        return (url, None) if match_template(rule.item_url, url) is not None else None
    return None


def _uncovered(body: Any, covers: list[str] | None) -> list[str]:
    """The fields `body` sets that `covers` does not name (none when `covers` is None)."""
    if covers is None or body is None:
        return []
    if not isinstance(body, dict):
        return ["(a body that is not an object)"]
    return sorted(k for k in body if k not in covers)


def _sets(body: Any, values: dict[str, Any]) -> bool:
    """True if `body` sets every field of `values` (non-empty) to its value."""
    return (
        bool(values)
        and isinstance(body, dict)
        and all(k in body and body[k] == v for k, v in values.items())
    )


def _undo_extra(rule: UndoRule, call: HttpCall) -> dict[str, Any]:
    """What every undo of `call` carries in its body: the rule's `undo_body`, and the
    `carry` fields the call set."""
    carried = {}
    if isinstance(call.body, dict):
        carried = {k: call.body[k] for k in rule.carry if k in call.body}
    return {**rule.undo_body, **carried}


def _merged(body: Any, extra: dict[str, Any]) -> Any:
    if not extra:
        return body
    return {**(body if isinstance(body, dict) else {}), **extra}


def _same_names(rule: UndoRule) -> dict[str, str]:
    """`close_with`'s fields as the state is read: `project`'s names, where it has them."""
    names = rule.project or {k: k for k in rule.close_with or {}}
    return {name: name for name in names}


def _shown(body: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in body.items())


def _state_url(match: RuleMatch, call: HttpCall, default: str) -> str:
    """Where the state a call changes is read: the rule's `state_url` (with the `state_query`
    the call's body gives), else `default`."""
    rule = match.rule
    if rule.state_url is None:
        return default
    url = match.fill(rule.state_url)
    body = call.body if isinstance(call.body, dict) else {}
    query = {name: body[field] for name, field in rule.state_query.items() if field in body}
    if query:
        url += ("&" if "?" in url else "?") + urlencode(query)
    return url


def _no_undo(handle: StepHandle, reason: str) -> None:
    assert handle.compensation is not None
    if handle.compensation.args.get("unavailable"):
        return  # already marked when the state was read before the call
    handle.notes.append(f"this step cannot be undone: {reason}")
    handle.set_compensation(unavailable(handle.compensation, reason))


def parse_call(method: str, url: str, headers: dict[str, str] | None, json: Any) -> HttpCall:
    problem = not_json(json)
    if problem is not None:  # named by its path, before pydantic tries to show the value
        raise InvalidHttpCall(redact(f"invalid http_request {problem}"))
    try:
        return HttpCall(method=method, url=url, headers=headers or {}, body=json)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "call"
        raise InvalidHttpCall(redact(f"invalid http_request {where}: {err['msg']}")) from None


def _template(call: HttpCall, plan: Plan, timeout: float) -> Compensation | None:
    """The undo as known before the call: described, its state or id filled in later."""
    if plan.match is None or plan.action not in ("create", "update", "delete"):
        return None
    rule = plan.match.rule
    if plan.action == "create":
        assert rule.item_url is not None
        url = plan.match.fill(rule.item_url)
        undo = UndoCall(method="DELETE", url=url)
        what = f"DELETE {url} with the {_id_names(plan.match)} of the response ({plan.source})"
        if rule.close_with is not None:
            undo = UndoCall(method="PATCH", url=url, json_body=rule.close_with)
            what = (
                f"PATCH {url} with {_shown(rule.close_with)}, {url} filled with the "
                f"{_id_names(plan.match)} of the response; it cannot be deleted ({plan.source})"
            )
    elif plan.action == "update":
        undo = UndoCall(method=rule.restore_method, url=call.url)
        what = f"{rule.restore_method} {call.url} back to the state read just before"
    else:
        target = plan.match.fill(rule.recreate_url) if rule.recreate_url else call.url
        undo = UndoCall(method=rule.recreate_method, url=target)
        what = f"{rule.recreate_method} {target} re-creating the state read just before"
    return revert(
        undo, headers=call.headers, check_url=None, before=None, description=what, timeout=timeout
    )
