"""A tiny scripted HTTP/1.1 server on loopback, for testing the client's handling of raw bytes.

Each incoming request takes the next scripted `Answer`: a status, headers and either a body
or a list of SSE events, optionally cut before `[DONE]` or dropped mid-stream, delayed, silent
before the headers or stalled mid-stream. Requests are recorded (headers and JSON body) so
tests can assert what the client sent; the server counts connections opened and closed and the
most requests it had in flight at once.
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
    delay: float = 0.0
    """Seconds to wait before answering (to overlap requests)."""
    silent: bool = False
    """Read the request and never answer."""
    stall_after: int | None = None
    """Send this many events, then go silent without closing."""
    prefix: bytes = b""
    """Raw bytes sent before the first event (e.g. a byte-order mark)."""
    tail: bytes = b""
    """Raw bytes sent after `[DONE]`, before the end of the body."""
    gates: dict[int, asyncio.Event] = field(default_factory=dict)
    """Before event i, wait (at most `gate_timeout` s) until `gates[i]` is set: the test
    decides what must have happened on the client first (e.g. a tool started)."""
    gate_timeout: float = 10.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
           403: "Forbidden", 404: "Not Found", 413: "Payload Too Large",
           422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class ScriptedServer:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[Recorded] = []
        self.connections = 0
        self.closed = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.gates_timed_out: list[int] = []
        """The events sent after their gate's wait ran out instead of the gate opening."""
        self._writers: set[asyncio.StreamWriter] = set()
        self._closed_event = asyncio.Event()
        self._stop = asyncio.Event()

    async def wait_closed_connection(self) -> None:
        """Wait until a connection has been closed by the client (or the server)."""
        await self._closed_event.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
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
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    keep = await self._answer(reader, writer, answer)
                finally:
                    self.in_flight -= 1
                if not keep:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed += 1
            self._closed_event.set()
            writer.close()
            self._writers.discard(writer)

    async def _stall(self, reader: asyncio.StreamReader) -> None:
        """Say nothing until the client closes the connection or the server stops."""
        eof = asyncio.ensure_future(reader.read())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([eof, stop], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (eof, stop):
            waiter.cancel()
        await asyncio.gather(eof, stop, return_exceptions=True)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      answer: Answer) -> bool:
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.silent:
            await self._stall(reader)
            return False
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
        if answer.prefix:
            writer.write(_chunk(answer.prefix))
        for i, event in enumerate(answer.events):
            if answer.drop_after is not None and i >= answer.drop_after:
                transport = writer.transport
                transport.abort()
                return False
            if answer.stall_after is not None and i >= answer.stall_after:
                await self._stall(reader)
                return False
            gate = answer.gates.get(i)
            if gate is not None:
                try:
                    await asyncio.wait_for(gate.wait(), answer.gate_timeout)
                except TimeoutError:
                    self.gates_timed_out.append(i)
            data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
            writer.write(_chunk(f"data: {data}\n\n".encode()))
            await writer.drain()
        if answer.done:
            writer.write(_chunk(b"data: [DONE]\n\n"))
            await writer.drain()
        if answer.tail:
            writer.write(_chunk(answer.tail))
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
            self._stop.set()
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
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
