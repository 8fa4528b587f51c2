"""An OpenAI-compatible model played by a local HTTP server on loopback.

``FakeLLM`` answers ``POST /v1/chat/completions`` with the next scripted ``Turn`` (or a
default text), as real chat-completion JSON, or as server-sent ``chat.completion.chunk``
events when the request asks to stream (tool calls split over several chunks, usage in a
last chunk when ``stream_options.include_usage`` is set). A turn can also be an HTTP error,
a delay (for timeouts) or raw text that is not JSON. Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Turn:
    content: str | None = "OK"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    raw: str | None = None
    prompt_tokens: int = 20
    completion_tokens: int = 5


def call(name: str, arguments: dict[str, Any] | str, call_id: str = "call_1") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.turns: list[Turn] = []
        self.default = Turn()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._lock = threading.Lock()

    def script(self, *turns: Turn) -> None:
        with self._lock:
            self.turns.extend(turns)

    def _next(self) -> Turn:
        with self._lock:
            return self.turns.pop(0) if self.turns else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                turn = fake._next()
                if turn.delay:
                    time.sleep(turn.delay)
                try:
                    if turn.status != 200:
                        error = {"error": {"message": "scripted failure", "type": "server_error"}}
                        self._send(turn.status, json.dumps(error).encode(), "application/json")
                    elif turn.raw is not None:
                        self._send(200, turn.raw.encode(), "application/json")
                    elif body.get("stream"):
                        self._stream(body, turn)
                    else:
                        self._send(
                            200,
                            json.dumps(fake.completion(body, turn)).encode(),
                            "application/json",
                        )
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], turn: Turn) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in fake.chunks(body, turn):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @staticmethod
    def _usage(turn: Turn) -> dict[str, int]:
        return {
            "prompt_tokens": turn.prompt_tokens,
            "completion_tokens": turn.completion_tokens,
            "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        }

    def completion(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.content}
        if turn.tool_calls:
            message["tool_calls"] = turn.tool_calls
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if turn.tool_calls else "stop",
                }
            ],
            "usage": self._usage(turn),
        }

    def chunks(self, body: dict[str, Any], turn: Turn) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        out = [chunk({"role": "assistant", "content": ""})]
        text = turn.content or ""
        for i in range(0, len(text), 4):
            out.append(chunk({"content": text[i : i + 4]}))
        for index, c in enumerate(turn.tool_calls):
            args = c["function"]["arguments"]
            half = len(args) // 2
            first = {"index": index, "id": c["id"], "type": "function"}
            first["function"] = {"name": c["function"]["name"], "arguments": args[:half]}
            out.append(chunk({"tool_calls": [first]}))
            out.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": args[half:]}}]})
            )
        out.append(chunk({}, "tool_calls" if turn.tool_calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            last = chunk({})
            last["choices"] = []
            last["usage"] = self._usage(turn)
            out.append(last)
        return out

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
