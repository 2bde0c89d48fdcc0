"""A local service that behaves like GitHub's contents, refs, issues, labels, assignees and
comments APIs, for stateful tests of the exact pairs (Prism checks the calls' shapes; it
keeps no state). Files and refs live in a real git repository: blob shas are git's, a
contents write is a commit, a ref moves only fast-forward unless forced, as on GitHub.

What GitHub does that matters to an undo, it does too: a file is written only with the
blob sha it replaces (409 otherwise), a file over `large` bytes reads with
`encoding: none` and no content, a ref cannot be created twice, reopening an issue sets
`state_reason: reopened`, `updated_at` changes on every write, labels unknown to the
repository are created on use, and issues cannot be deleted. Paths take `/` as is or
percent-encoded (`heads%2Fmain`).
"""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tests.http.test_secrets import closed_port

USERS = ("octocat", "hubot", "monalisa")
REPO = "/repos/{owner}/{repo}"


class Git:
    """The repository behind the service, driven through git's plumbing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        root.mkdir(parents=True)
        self("init", "-q", "-b", "main")
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "GitHub",
            "GIT_AUTHOR_EMAIL": "noreply@github.com",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.com",
        }

    def __call__(self, *args: str, data: bytes | None = None, index: str | None = None) -> str:
        env = dict(getattr(self, "env", os.environ))
        if index is not None:
            env["GIT_INDEX_FILE"] = index
        done = subprocess.run(
            ["git", "-C", str(self.root), *args], input=data, capture_output=True, env=env
        )
        if done.returncode != 0:
            raise LookupError(done.stderr.decode(errors="replace"))
        return done.stdout.decode().strip()

    def sha(self, name: str) -> str | None:
        try:
            return self("rev-parse", "--verify", "-q", name)
        except LookupError:
            return None

    def blob(self, branch: str, path: str) -> tuple[str, bytes] | None:
        found = self.sha(f"refs/heads/{branch}:{path}")
        if found is None or self("cat-file", "-t", found) != "blob":
            return None
        done = subprocess.run(
            ["git", "-C", str(self.root), "cat-file", "blob", found], capture_output=True
        )
        return found, done.stdout

    def commit(self, branch: str, path: str, data: bytes | None, message: str) -> str:
        """Write (or, with None, remove) `path` on `branch` in a new commit; its sha."""
        parent = self.sha(f"refs/heads/{branch}")
        index = str(self.root / ".git" / f"index-{threading.get_ident()}")
        if parent is not None:
            self("read-tree", parent, index=index)
        else:
            self("read-tree", "--empty", index=index)
        if data is None:
            self("update-index", "--force-remove", "--", path, index=index)
        else:
            blob = self("hash-object", "-w", "--stdin", data=data)
            self("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index)
        tree = self("write-tree", index=index)
        os.unlink(index)
        parents = ["-p", parent] if parent else []
        commit = self("commit-tree", tree, *parents, "-m", message)
        self("update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []))
        return commit

    def refs(self) -> dict[str, str]:
        listed = self("for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split(" ", 1) for line in listed.splitlines() if line)

    def trees(self) -> dict[str, dict[str, str]]:
        """Every branch's files: path -> blob sha."""
        found = {}
        for ref in self.refs():
            if ref.startswith("refs/heads/"):
                listed = self("ls-tree", "-r", ref)
                found[ref] = {
                    line.split("\t", 1)[1]: line.split()[2] for line in listed.splitlines()
                }
        return found


class GitHubLike:
    """The service's state and its FastAPI app."""

    def __init__(
        self,
        root: Path,
        *,
        large: int = 1_000_000,
        authorize: Callable[[str], bool] | None = None,
    ) -> None:
        self.authorize = authorize  # given: every request needs a bearer token it accepts
        self.requests: list[tuple[str, str, bool]] = []  # method, path, authorized
        self.git = Git(root / "repo")
        self.url = ""  # set once it runs
        self.large = large
        self.lock = threading.RLock()
        self.ids = itertools.count(1000)
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.milestones = {1: {"number": 1, "title": "v1"}, 2: {"number": 2, "title": "v2"}}
        self.app = self._app()

    # state for the tests

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "refs": self.git.refs(),
                "trees": self.git.trees(),
                "issues": {n: _plain(i) for n, i in self.issues.items()},
                "comments": {c: _plain(v) for c, v in self.comments.items()},
                "labels": sorted(self.labels),
            }

    def seed_issue(self, title: str, labels: list[str], assignees: list[str]) -> int:
        with self.lock:
            return int(
                self._new_issue({"title": title, "labels": labels, "assignees": assignees})[
                    "number"
                ]
            )

    # the API

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def bearer(request: Request, call_next: Any) -> Response:
            if self.authorize is None:
                response: Response = await call_next(request)
                return response
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            ok = await run_in_threadpool(self.authorize, token)
            self.requests.append((request.method, request.url.path, ok))
            if not ok:
                return JSONResponse({"message": "Bad credentials"}, status_code=401)
            response = await call_next(request)
            return response

        app.add_api_route(f"{REPO}/contents/{{path:path}}", self.get_file, methods=["GET"])
        app.add_api_route(f"{REPO}/contents/{{path:path}}", self.put_file, methods=["PUT"])
        app.add_api_route(f"{REPO}/contents/{{path:path}}", self.delete_file, methods=["DELETE"])
        app.add_api_route(f"{REPO}/git/ref/{{ref:path}}", self.get_ref, methods=["GET"])
        app.add_api_route(f"{REPO}/git/refs", self.create_ref, methods=["POST"])
        app.add_api_route(f"{REPO}/git/refs/{{ref:path}}", self.update_ref, methods=["PATCH"])
        app.add_api_route(f"{REPO}/git/refs/{{ref:path}}", self.delete_ref, methods=["DELETE"])
        app.add_api_route(f"{REPO}/issues", self.create_issue, methods=["POST"])
        issue = f"{REPO}/issues/{{number}}"
        app.add_api_route(issue, self.get_issue, methods=["GET"])
        app.add_api_route(issue, self.edit_issue, methods=["PATCH"])
        app.add_api_route(f"{issue}/labels", self.get_labels, methods=["GET"])
        app.add_api_route(f"{issue}/labels", self.add_labels, methods=["POST"])
        app.add_api_route(f"{issue}/labels", self.set_labels, methods=["PUT"])
        app.add_api_route(f"{issue}/labels", self.clear_labels, methods=["DELETE"])
        app.add_api_route(f"{issue}/labels/{{name}}", self.remove_label, methods=["DELETE"])
        app.add_api_route(f"{issue}/assignees", self.add_assignees, methods=["POST"])
        app.add_api_route(f"{issue}/assignees", self.remove_assignees, methods=["DELETE"])
        app.add_api_route(f"{issue}/comments", self.create_comment, methods=["POST"])
        comment = f"{REPO}/issues/comments/{{comment_id}}"
        app.add_api_route(comment, self.get_comment, methods=["GET"])
        app.add_api_route(comment, self.edit_comment, methods=["PATCH"])
        app.add_api_route(comment, self.delete_comment, methods=["DELETE"])
        return app

    # contents

    def get_file(self, path: str, ref: str = "main") -> Response:
        with self.lock:
            found = self.git.blob(ref, path)
            if found is None:
                raise HTTPException(404, "Not Found")
            sha, data = found
            entry = {"type": "file", "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha}
            entry["size"] = len(data)
            if len(data) > self.large:  # as GitHub does for files of 1-100 MB
                entry |= {"encoding": "none", "content": ""}
            else:
                entry |= {"encoding": "base64", "content": base64.encodebytes(data).decode()}
            return JSONResponse(entry)

    async def put_file(self, path: str, request: Request) -> Response:
        body = await request.json()
        branch = body.get("branch", "main")
        with self.lock:
            found = self.git.blob(branch, path)
            if found is not None and body.get("sha") != found[0]:
                status = 422 if "sha" not in body else 409
                raise HTTPException(status, f"{path} does not match {body.get('sha')}")
            try:
                data = base64.b64decode(body["content"])
            except (KeyError, ValueError):
                raise HTTPException(422, "content is not valid Base64") from None
            commit = self.git.commit(branch, path, data, body["message"])
            sha, _ = self.git.blob(branch, path) or ("", b"")
            answer = {"content": {"path": path, "sha": sha}, "commit": {"sha": commit}}
            return JSONResponse(answer, status_code=200 if found else 201)

    async def delete_file(self, path: str, request: Request) -> Response:
        body = await request.json()
        branch = body.get("branch", "main")
        with self.lock:
            found = self.git.blob(branch, path)
            if found is None:
                raise HTTPException(404, "Not Found")
            if body.get("sha") != found[0]:
                raise HTTPException(409, f"{path} does not match {body.get('sha')}")
            commit = self.git.commit(branch, path, None, body["message"])
            return JSONResponse({"content": None, "commit": {"sha": commit}})

    # refs

    def _ref(self, ref: str) -> dict[str, Any]:
        full = ref if ref.startswith("refs/") else f"refs/{ref}"
        sha = self.git.refs().get(full)
        if sha is None:
            raise HTTPException(404, "Not Found")
        return {"ref": full, "object": {"type": "commit", "sha": sha}}

    def get_ref(self, ref: str) -> Response:
        with self.lock:
            return JSONResponse(self._ref(ref))

    async def create_ref(self, request: Request) -> Response:
        body = await request.json()
        ref, sha = body.get("ref", ""), body.get("sha", "")
        with self.lock:
            if not ref.startswith("refs/") or ref.count("/") < 2:
                raise HTTPException(422, f"{ref} is not a valid ref name")
            if ref in self.git.refs():
                raise HTTPException(422, "Reference already exists")
            if self.git.sha(f"{sha}^{{commit}}") is None:
                raise HTTPException(422, "Object does not exist")
            self.git("update-ref", ref, sha)
            return JSONResponse(self._ref(ref), status_code=201)

    async def update_ref(self, ref: str, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            old = self._ref(ref)["object"]["sha"]
            new = body.get("sha", "")
            if self.git.sha(f"{new}^{{commit}}") is None:
                raise HTTPException(422, "Object does not exist")
            if not body.get("force"):
                try:
                    self.git("merge-base", "--is-ancestor", old, new)
                except LookupError:
                    raise HTTPException(422, "Update is not a fast forward") from None
            full = self._ref(ref)["ref"]
            self.git("update-ref", full, new, old)
            return JSONResponse(self._ref(ref))

    def delete_ref(self, ref: str) -> Response:
        with self.lock:
            try:
                full = self._ref(ref)["ref"]
            except HTTPException:
                raise HTTPException(422, "Reference does not exist") from None
            self.git("update-ref", "-d", full)
            return Response(status_code=204)

    # issues

    def _issue(self, number: str | int) -> dict[str, Any]:
        found = self.issues.get(int(number))
        if found is None:
            raise HTTPException(404, "Not Found")
        return found

    def _label(self, name: str) -> dict[str, Any]:
        if name not in self.labels:
            self.labels[name] = {"id": next(self.ids), "name": name, "color": "ededed"}
        return self.labels[name]

    def _names(self, given: Any) -> list[str]:
        items = given.get("labels", []) if isinstance(given, dict) else given
        if not isinstance(items, list):
            raise HTTPException(422, "labels must be an array")
        return [i["name"] if isinstance(i, dict) else str(i) for i in items]

    def _new_issue(self, body: dict[str, Any]) -> dict[str, Any]:
        number = len(self.issues) + 1
        self.issues[number] = issue = {
            "id": next(self.ids),
            "number": number,
            "title": body["title"],
            "body": body.get("body"),
            "state": "open",
            "state_reason": None,
            "labels": [],
            "assignees": [],
            "milestone": None,
            "updated_at": _now(),
        }
        self._apply(issue, {k: v for k, v in body.items() if k != "title"})
        return issue

    def _apply(self, issue: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("title", "body"):
            if key in body:
                issue[key] = body[key]
        if "state" in body and body["state"] != issue["state"]:
            if body["state"] not in ("open", "closed"):
                raise HTTPException(422, "state must be open or closed")
            issue["state"] = body["state"]
            reopened = "reopened" if body["state"] == "open" else "completed"
            issue["state_reason"] = body.get("state_reason") or reopened
        elif "state_reason" in body and issue["state"] == "closed":
            issue["state_reason"] = body["state_reason"]
        if "labels" in body:
            issue["labels"] = [self._label(n) for n in self._names(body["labels"])]
        if "assignees" in body:  # GitHub drops whom it cannot assign
            issue["assignees"] = [{"login": u} for u in body["assignees"] if u in USERS]
        if "milestone" in body:
            wanted = body["milestone"]
            if wanted is not None and wanted not in self.milestones:
                raise HTTPException(422, "milestone does not exist")
            issue["milestone"] = None if wanted is None else dict(self.milestones[wanted])
        issue["updated_at"] = _now()

    async def create_issue(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            return JSONResponse(self._new_issue(body), status_code=201)

    def get_issue(self, number: str) -> Response:
        with self.lock:
            return JSONResponse(self._issue(number))

    async def edit_issue(self, number: str, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            issue = self._issue(number)
            self._apply(issue, body)
            return JSONResponse(issue)

    def get_labels(self, number: str, per_page: int = 30) -> Response:
        with self.lock:
            return JSONResponse(self._issue(number)["labels"][:per_page])

    async def add_labels(self, number: str, request: Request) -> Response:
        names = self._names(await request.json())
        with self.lock:
            issue = self._issue(number)
            have = [label["name"] for label in issue["labels"]]
            self._apply(issue, {"labels": have + [n for n in names if n not in have]})
            return JSONResponse(issue["labels"])

    async def set_labels(self, number: str, request: Request) -> Response:
        names = self._names(await request.json())
        with self.lock:
            issue = self._issue(number)
            self._apply(issue, {"labels": names})
            return JSONResponse(issue["labels"])

    def clear_labels(self, number: str) -> Response:
        with self.lock:
            self._apply(self._issue(number), {"labels": []})
            return Response(status_code=204)

    def remove_label(self, number: str, name: str) -> Response:
        with self.lock:
            issue = self._issue(number)
            have = [label["name"] for label in issue["labels"]]
            if name not in have:
                raise HTTPException(404, "Label does not exist")
            self._apply(issue, {"labels": [n for n in have if n != name]})
            return JSONResponse(issue["labels"])

    async def add_assignees(self, number: str, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            issue = self._issue(number)
            have = [a["login"] for a in issue["assignees"]]
            self._apply(
                issue, {"assignees": have + [u for u in body["assignees"] if u not in have]}
            )
            return JSONResponse(issue, status_code=201)

    async def remove_assignees(self, number: str, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            issue = self._issue(number)
            have = [a["login"] for a in issue["assignees"]]
            self._apply(issue, {"assignees": [u for u in have if u not in body["assignees"]]})
            return JSONResponse(issue)

    # comments

    async def create_comment(self, number: str, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self._issue(number)
            comment = {"id": next(self.ids), "issue": int(number), "body": body["body"]}
            self.comments[comment["id"]] = comment | {"updated_at": _now()}
            return JSONResponse(self.comments[comment["id"]], status_code=201)

    def _comment(self, comment_id: str) -> dict[str, Any]:
        found = self.comments.get(int(comment_id))
        if found is None:
            raise HTTPException(404, "Not Found")
        return found

    def get_comment(self, comment_id: str) -> Response:
        with self.lock:
            return JSONResponse(self._comment(comment_id))

    async def edit_comment(self, comment_id: str, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            comment = self._comment(comment_id)
            comment.update(body=body["body"], updated_at=_now())
            return JSONResponse(comment)

    def delete_comment(self, comment_id: str) -> Response:
        with self.lock:
            self._comment(comment_id)
            del self.comments[int(comment_id)]
            return Response(status_code=204)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f"#{time.monotonic_ns()}"


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "updated_at"}


class Running:
    """The service on 127.0.0.1 in a thread of the test process."""

    def __init__(self, service: GitHubLike) -> None:
        self.service = service
        port = closed_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the GitHub-like service did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
