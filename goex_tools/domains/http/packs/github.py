"""GitHub's REST API: what agents do, each call with its undo and whether it is exact.

Checked against GitHub's own OpenAPI description (`@octokit/openapi`, api.github.com.json):
every call below and every undo it produces is a request that document accepts.

| call | undo | label |
| --- | --- | --- |
| create an issue / a pull request | close it (issue: as not planned) | semantic |
| edit an issue (title, body, state, labels, assignees, milestone) | PATCH them back | exact |
| edit a pull request (title, body, state, base) | PATCH them back | exact |
| add / set / remove labels of an issue | PUT the label set back | exact |
| add / remove assignees | PATCH the assignees back | exact |
| create a comment | delete it | exact |
| edit a comment | PATCH its body back | exact |
| create a ref (branch, tag) | delete it | exact |
| move a ref (fast-forward) | move it back (force) | exact |
| delete a ref | re-create it at its commit | exact |
| create / update / delete a file (contents API) | write it back, blob sha as precondition | exact |
| create a release | delete it (a tag it created stays) | semantic |
| edit a release's name, body, prerelease | PATCH them back | exact |
| merge (a pull request, a branch), force-move a ref, delete a repository | none | irreversible |
| delete a comment or release, transfer, notifications, dispatches, reviews | none | irreversible |

`exact` is about GitHub's state: a file's content and blob sha, a ref's commit, an issue's
fields. What GitHub did besides cannot come back: notifications and emails it sent, timeline
events, the commits a contents-API write and its undo add to a branch's history.
A call setting a field a pair does not restore (e.g. an issue's `type`) is irreversible.
"""

from __future__ import annotations

from typing import Literal

from goex_tools.domains.http.rules import UndoRule, UndoRules

API = "https://api.github.com"
UPDATE: Literal["update"] = "update"
DELETE: Literal["delete"] = "delete"
UNDO_MESSAGE = "Undo an agent's change (goex rollback)"

ISSUE = {
    "title": "title",
    "body": "body",
    "state": "state",
    "labels": "labels.*.name",
    "assignees": "assignees.*.login",
    "milestone": "milestone.number",
}
PULL = {"title": "title", "body": "body", "state": "state", "base": "base.ref"}
RELEASE = {"name": "name", "body": "body", "prerelease": "prerelease"}
REF = {"ref": "ref", "sha": "object.sha"}
CONTENT = {"content": "content", "sha": "sha"}


def rules(base_url: str = API) -> UndoRules:
    """The pack for the API at `base_url` (GitHub Enterprise: `https://HOST/api/v3`)."""
    base = base_url.rstrip("/")
    repo = f"{base}/repos/{{owner}}/{{repo}}"
    issue = f"{repo}/issues/{{issue_number}}"
    labels = f"{issue}/labels"
    comment = f"{repo}/issues/comments/{{comment_id}}"
    ref, ref_read = f"{repo}/git/refs/{{+ref}}", f"{repo}/git/ref/{{+ref}}"
    contents = f"{repo}/contents/{{+path}}"
    found: list[UndoRule] = [
        # issues and pull requests: GitHub deletes neither, so a create is undone by closing
        UndoRule(
            action="create",
            method="POST",
            url=f"{repo}/issues",
            item_url=issue,
            id_field="number",
            close_with={"state": "closed", "state_reason": "not_planned"},
            project={"state": "state", "state_reason": "state_reason"},
        ),
        UndoRule(
            action="update",
            method="PATCH",
            url=issue,
            restore_method="PATCH",
            project=ISSUE,
            covers=[*ISSUE, "state_reason", "assignee"],
        ),
        UndoRule(
            action="create",
            method="POST",
            url=f"{repo}/pulls",
            item_url=f"{repo}/pulls/{{pull_number}}",
            id_field="number",
            close_with={"state": "closed"},
            project={"state": "state"},
        ),
        UndoRule(
            action="update",
            method="PATCH",
            url=f"{repo}/pulls/{{pull_number}}",
            restore_method="PATCH",
            project=PULL,
            covers=list(PULL),
        ),
        # labels and assignees of an issue: the set is read before and written back
        *(
            UndoRule(
                action="update",
                method=method,
                url=url,
                state_url=f"{labels}?per_page=100",
                restore_url=labels,
                restore_method="PUT",
                project={"labels": "*.name"},
                covers=["labels"],
            )
            for method, url in (
                ("POST", labels),
                ("PUT", labels),
                ("DELETE", labels),
                ("DELETE", f"{labels}/{{name}}"),
            )
        ),
        *(
            UndoRule(
                action="update",
                method=method,
                url=f"{issue}/assignees",
                state_url=issue,
                restore_url=issue,
                restore_method="PATCH",
                project={"assignees": "assignees.*.login"},
                covers=["assignees"],
            )
            for method in ("POST", "DELETE")
        ),
        # comments
        UndoRule(
            action="create",
            method="POST",
            url=f"{issue}/comments",
            item_url=comment,
            id_field="id",
            project={"body": "body"},
        ),
        UndoRule(
            action="update",
            method="PATCH",
            url=comment,
            restore_method="PATCH",
            project={"body": "body"},
            covers=["body"],
        ),
        # refs (branches, tags): `{+ref}` is `heads/main`, sent as one segment `heads%2Fmain`
        UndoRule(
            action="create",
            method="POST",
            url=f"{repo}/git/refs",
            item_url=ref,
            id_field="ref",
            id_prefix="refs/",
            state_url=ref_read,
            project=REF,
        ),
        UndoRule(
            action="update",
            method="PATCH",
            url=ref,
            state_url=ref_read,
            restore_url=ref,
            restore_method="PATCH",
            project={"sha": "object.sha"},
            undo_body={"force": True},
            covers=["sha", "force"],
            irreversible_if={"force": True},
        ),
        UndoRule(
            action="delete",
            method="DELETE",
            url=ref,
            state_url=ref_read,
            recreate_method="POST",
            recreate_url=f"{repo}/git/refs",
            project=REF,
        ),
        # files, through the contents API: the blob sha just read is the precondition
        *(
            UndoRule(
                action=action,
                method=method,
                url=contents,
                state_url=contents,
                state_query={"ref": "branch"},
                restore_method="PUT",
                recreate_method="PUT",
                project=CONTENT,
                undo_body={"message": UNDO_MESSAGE},
                carry=["branch"],
                precondition_field="sha",
                restorable_if={"type": "file", "encoding": "base64"},
                covers=["message", "content", "sha", "branch", "committer", "author"],
            )
            for action, method in ((UPDATE, "PUT"), (DELETE, "DELETE"))
        ),
        # releases
        UndoRule(
            action="create",
            method="POST",
            url=f"{repo}/releases",
            item_url=f"{repo}/releases/{{release_id}}",
            id_field="id",
            undo="semantic",
            project={"tag_name": "tag_name", **RELEASE},
        ),
        UndoRule(
            action="update",
            method="PATCH",
            url=f"{repo}/releases/{{release_id}}",
            restore_method="PATCH",
            project=RELEASE,
            covers=list(RELEASE),
        ),
    ]
    pack = UndoRules(found)
    for method, url in IRREVERSIBLE:
        pack.irreversible(method, url.format(repo=repo, base=base))
    return pack


IRREVERSIBLE = [
    ("PUT", "{repo}/pulls/{{pull_number}}/merge"),
    ("POST", "{repo}/merges"),
    ("DELETE", "{repo}"),
    ("POST", "{repo}/transfer"),
    ("DELETE", "{repo}/issues/comments/{{comment_id}}"),
    ("DELETE", "{repo}/releases/{{release_id}}"),
    ("POST", "{repo}/dispatches"),
    ("POST", "{repo}/actions/workflows/{{workflow_id}}/dispatches"),
    ("PUT", "{repo}/notifications"),
    ("PUT", "{base}/notifications"),
    ("PATCH", "{base}/notifications/threads/{{thread_id}}"),
    ("POST", "{repo}/pulls/{{pull_number}}/reviews"),
]
"""Calls nothing undoes: merges, deletions GitHub cannot re-create as they were, what
notifies people."""
