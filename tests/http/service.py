"""A real CRUD service for the tests (FastAPI + uvicorn on 127.0.0.1), with real state.

- /items, /items/{item_id}: POST (an `id` may be given), GET, PUT (replace or create),
  PATCH, DELETE; with a token set, they need `Authorization: Bearer <token>`.
- POST /emails: an action nothing can undo.
- /echo: answers the request's headers, query and body (status from `?status=`); with
  `?echo_headers=1` also as response headers `x-echo-<name>`, with `?raw=1` the body alone
  (with `&split=N`: its first N bytes, a pause, then the rest); `?style=` echoes what it got
  the ways real services do (see `styled`).
- /_state, /_reset, /_faults: the tests read the whole state, reset it, and make the next N
  matching requests fail (503, 429 with Retry-After) or wait first (`delay`). These stay out
  of the OpenAPI document.
FastAPI generates the service's OpenAPI document at /openapi.json.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel


class ItemIn(BaseModel):
    name: str
    price: float = 0.0
    tags: list[str] = []


class ItemCreate(ItemIn):
    id: int | None = None


class ItemPatch(BaseModel):
    name: str | None = None
    price: float | None = None
    tags: list[str] | None = None


class Item(ItemIn):
    id: int


class Email(BaseModel):
    to: str
    subject: str


class Fault(BaseModel):
    method: str
    path: str
    status: int = 503
    times: int = 1
    retry_after: str | None = None
    after: bool = False  # apply the request, then answer with the fault anyway
    delay: float = 0.0  # seconds to wait first; with status 0, then answer normally


class ServiceState:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.items: dict[int, Item] = {}
        self.emails: list[Email] = []
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), "METHOD /path")
        self.echoed: list[dict[str, Any]] = []  # what /echo received, unmasked
        self.next_id = 1

    def dump(self) -> dict[str, Any]:
        return {
            "items": [self.items[k].model_dump() for k in sorted(self.items)],
            "emails": [e.model_dump() for e in self.emails],
            "next_id": self.next_id,
        }


def make_app(state: ServiceState) -> FastAPI:
    app = FastAPI(title="items", version="1.0")

    def authorized(authorization: str | None = Header(default=None)) -> None:
        if state.token is not None and authorization != f"Bearer {state.token}":
            raise HTTPException(401, "missing or wrong bearer token")

    @app.middleware("http")
    async def faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        with state.lock:
            state.requests.append(f"{request.method} {request.url.path}")
            state.arrivals.append((time.monotonic(), state.requests[-1]))
            fault = next(
                (
                    f
                    for f in state.faults
                    if (f.method, f.path) == (request.method, request.url.path)
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    state.faults.remove(fault)
        if fault is None:
            return await call_next(request)
        await asyncio.sleep(fault.delay)
        if fault.status == 0:
            return await call_next(request)
        if fault.after:
            await call_next(request)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return JSONResponse({"detail": "injected"}, fault.status, headers=headers)

    @app.get("/items", response_model=list[Item], dependencies=[Depends(authorized)])
    def list_items() -> list[Item]:
        return [state.items[k] for k in sorted(state.items)]

    @app.post("/items", status_code=201, response_model=Item, dependencies=[Depends(authorized)])
    def create_item(body: ItemCreate) -> Item:
        with state.lock:
            if body.id is not None and body.id in state.items:
                raise HTTPException(409, f"item {body.id} exists")
            new_id = body.id if body.id is not None else state.next_id
            state.next_id = max(state.next_id, new_id + 1)
            item = Item(id=new_id, **body.model_dump(exclude={"id"}))
            state.items[new_id] = item
            return item

    @app.get("/items/{item_id}", response_model=Item, dependencies=[Depends(authorized)])
    def get_item(item_id: int) -> Item:
        if item_id not in state.items:
            raise HTTPException(404, "no such item")
        return state.items[item_id]

    @app.get("/items/{item_id}/tags", dependencies=[Depends(authorized)])
    def list_tags(item_id: int) -> list[dict[str, Any]]:
        """An item's tags as a sub-collection: they go with the item, and none can be
        added or re-created on its own."""
        if item_id not in state.items:
            raise HTTPException(404, "no such item")
        return [{"id": n, "tag": t} for n, t in enumerate(state.items[item_id].tags)]

    @app.put("/items/{item_id}", response_model=Item, dependencies=[Depends(authorized)])
    def put_item(item_id: int, body: ItemIn) -> Item:
        with state.lock:
            item = Item(id=item_id, **body.model_dump())
            state.items[item_id] = item
            state.next_id = max(state.next_id, item_id + 1)
            return item

    @app.patch("/items/{item_id}", response_model=Item, dependencies=[Depends(authorized)])
    def patch_item(item_id: int, body: ItemPatch) -> Item:
        with state.lock:
            if item_id not in state.items:
                raise HTTPException(404, "no such item")
            changes = body.model_dump(exclude_unset=True)
            item = state.items[item_id].model_copy(update=changes)
            state.items[item_id] = item
            return item

    @app.delete("/items/{item_id}", status_code=204, dependencies=[Depends(authorized)])
    def delete_item(item_id: int) -> Response:
        with state.lock:
            if state.items.pop(item_id, None) is None:
                raise HTTPException(404, "no such item")
        return Response(status_code=204)

    @app.post("/emails", status_code=202)
    def send_email(body: Email) -> dict[str, str]:
        state.emails.append(body)
        return {"queued": body.to}

    @app.api_route("/echo", methods=["GET", "POST"], include_in_schema=False)
    async def echo(
        request: Request,
        status: int = 200,
        echo_headers: bool = False,
        raw: bool = False,
        split: int = 0,
        style: str = "",
    ) -> Response:
        received = {
            "headers": dict(request.headers),
            "query": dict(request.query_params),
            "body": (await request.body()).decode(),
        }
        state.echoed.append(received)
        headers = (
            {f"x-echo-{k}": v for k, v in request.headers.items() if k != "content-length"}
            if echo_headers
            else {}
        )
        if style:
            return styled(style, request, received)
        if raw and split:
            body = received["body"].encode()

            async def pieces() -> AsyncIterator[bytes]:
                yield body[:split]
                await asyncio.sleep(0.05)  # the client reads the first piece on its own
                yield body[split:]

            return StreamingResponse(pieces(), status, headers, media_type="text/plain")
        if raw:
            return Response(received["body"], status, headers, media_type="text/plain")
        return JSONResponse(received, status, headers)

    @app.get("/_state", include_in_schema=False)
    def dump() -> dict[str, Any]:
        return state.dump()

    @app.post("/_reset", include_in_schema=False)
    def reset() -> None:
        state.reset()

    @app.post("/_faults", include_in_schema=False)
    def add_fault(fault: Fault) -> None:
        state.faults.append(fault)

    return app


def styled(style: str, request: Request, received: dict[str, Any]) -> Response:
    """The echo as services write it: JSON escaped the PHP way (`\\/`) or the .NET way
    (`\\u002B`), the query as it came (lower-case percent escapes) or form-encoded, the
    Authorization header base64-encoded, its Basic credentials decoded, or the bearer token
    split over two fields."""
    auth = request.headers.get("authorization", "")
    _, _, credential = auth.partition(" ")
    text = json.dumps(received)
    if style == "php":
        return Response(text.replace("/", "\\/"), media_type="application/json")
    if style == "dotnet":
        escaped = re.sub(r"[+<>&']", lambda m: f"\\u{ord(m.group(0)):04X}", text)
        return Response(escaped, media_type="application/json; charset=utf-8")
    if style == "query":
        lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), request.url.query)
        return JSONResponse({"query": lower})
    if style == "form":
        return Response(
            urlencode(dict(request.query_params)), media_type="application/x-www-form-urlencoded"
        )
    if style == "base64":
        raw = auth.encode()
        return JSONResponse(
            {
                "header": base64.b64encode(raw).decode(),
                "header_url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
                "line": base64.b64encode(b"Authorization: " + raw).decode(),
                "credential": base64.b64encode(credential.encode()).decode().rstrip("="),
            }
        )
    if style == "basic":
        decoded = base64.b64decode(credential).decode()
        return JSONResponse({"user:password": decoded, "password": decoded.split(":", 1)[1]})
    if style == "split":
        half = len(credential) // 2
        return JSONResponse({"first": credential[:half], "second": credential[half:]})
    raise HTTPException(400, f"unknown style {style!r}")


class Service:
    """The service running in a background thread on a free 127.0.0.1 port."""

    def __init__(
        self, token: str | None = None, *, port: int = 0, state: ServiceState | None = None
    ) -> None:
        self.state = state or ServiceState(token)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._socket = sock
        config = uvicorn.Config(make_app(self.state), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, args=([sock],), daemon=True)

    def start(self) -> Service:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test service did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
