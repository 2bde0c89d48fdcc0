"""An OpenAI-compatible chat completions server on 127.0.0.1 that plays a script.

It stands where Ollama, vLLM or LiteLLM would when OPENAI_BASE_URL points at them, so the
demo's real-model path (langchain-openai's `ChatOpenAI`, over HTTP) runs offline. Each
request is kept, to check what the client sent (tools, authorization).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = str | list[tuple[str, dict[str, Any]]]
Script = Callable[[dict[str, Any]], list[Turn]]  # the first request's body -> the turns


class ScriptedOpenAIServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.turns: list[Turn] | None = None
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((headers, body))
            if self.turns is None:
                self.turns = list(self.script(body))
            if not self.turns:
                return 400, {"error": {"message": "the script has no turn left"}}
            turn = self.turns.pop(0)
            number = len(self.requests)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if isinstance(turn, str):
            message["content"], finish = turn, "stop"
        else:
            message["tool_calls"] = [
                {
                    "id": f"call_{number}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(turn)
            ]
            finish = "tool_calls"
        return 200, {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    status, reply = 404, {"error": {"message": f"no route {self.path}"}}
                else:
                    status, reply = server.answer(
                        {k.lower(): v for k, v in self.headers.items()}, body
                    )
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
