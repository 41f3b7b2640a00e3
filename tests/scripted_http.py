"""A tiny scripted HTTP/1.1 server on loopback, for testing the client's handling of raw bytes.

Each incoming request takes the next scripted `Answer`: a status, headers and either a body
or a list of SSE events, optionally cut before `[DONE]` or dropped mid-stream. Requests are
recorded (headers and JSON body) so tests can assert what the client sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any] | str] | None = None
    done: bool = True
    drop_after: int | None = None
    """Close the socket abruptly after this many events (no chunked terminator)."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
           404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class ScriptedServer:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[Recorded] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Recorded(method, path, headers, body))
                answer = self.answers.pop(0) if self.answers else Answer(500, {"error": {
                    "message": "script exhausted", "type": "server_error"}})
                keep = await self._answer(writer, answer)
                if not keep:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, answer: Answer) -> bool:
        reason = REASONS.get(answer.status, "Status")
        if answer.events is None:
            body = answer.body
            if isinstance(body, dict):
                payload = json.dumps(body, ensure_ascii=False).encode()
                ctype = "application/json"
            else:
                payload = body.encode() if isinstance(body, str) else (body or b"")
                ctype = "text/plain; charset=utf-8"
            headers = {"content-type": ctype, **answer.headers,
                       "content-length": str(len(payload))}
            writer.write(_head(answer.status, reason, headers) + payload)
            await writer.drain()
            return True
        headers = {"content-type": "text/event-stream", **answer.headers,
                   "transfer-encoding": "chunked"}
        writer.write(_head(answer.status, reason, headers))
        for i, event in enumerate(answer.events):
            if answer.drop_after is not None and i >= answer.drop_after:
                transport = writer.transport
                transport.abort()
                return False
            data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
            writer.write(_chunk(f"data: {data}\n\n".encode()))
            await writer.drain()
        if answer.done:
            writer.write(_chunk(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            server.close()
            await server.wait_closed()


def _head(status: int, reason: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def completion(content: str | None = "好的", *, reasoning: str | None = "思考中",
               tool_calls: list[dict[str, Any]] | None = None, usage_in_choice: bool = False,
               usage: dict[str, Any] | None = None, model: str = "kimi-k2-6",
               finish_reason: str | None = None) -> dict[str, Any]:
    """A Kimi-shaped non-streamed reply."""
    message: dict[str, Any] = {"role": "assistant", "content": content,
                               "reasoning_content": reasoning}
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = usage or {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    choice: dict[str, Any] = {"index": 0, "message": message,
                              "finish_reason": finish_reason
                              or ("tool_calls" if tool_calls else "stop")}
    reply: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                             "model": model, "choices": [choice]}
    if usage_in_choice:
        choice["usage"] = usage
    else:
        reply["usage"] = usage
    return reply
