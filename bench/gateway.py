"""A lean, fast fake of the Kimi gateway, for benchmarks only (not the strict simulator).

A raw asyncio HTTP/1.1 server (keep-alive, Content-Length or chunked request bodies, chunked
SSE responses) that answers `POST …/chat/completions` in Moonshot's shapes:

- a request whose last message is not a tool result → an assistant message with 4 parallel
  calls of the first declared tool (opaque ids `lookup:0`..`lookup:3`, arguments as JSON
  strings, `reasoning_content`, usage in `choices[0].usage` and at the top level);
- a request ending with tool results → a text quoting `<tool_call_id>=<content>` for every tool
  message it received, so only a client that really ran the tools and sent them back passes.

It is lenient: unknown fields (`stream_options`, `parallel_tool_calls`, `temperature`, …) are
ignored and any API key is accepted.

Per-scenario behaviour is chosen by path segments in front of `/v1`, so one process serves
every scenario: `/lat500/v1/…` answers after 500 ms (model latency), `/gap250/v1/…` streams
the tool calls of a reply 250 ms apart (call i's header and arguments at i × 250 ms, the finish
chunk right after the last call). Counters and probes, on `GET /_…` paths (not counted as client
connections): `/_stats`, `/_capture/<key>` (the first request of the conversation whose prompt
ends with `cap-…`), `/_trace/<key>` (arrival times of the requests of a `t-…` conversation),
`/_cache/<key>` (the prompt-cache model of `bench.cachemodel`).

It runs in its own process so its CPU does not blur the client's figures:
`python -m bench.gateway` prints `READY <base_url>` and serves until SIGTERM,
until its parent exits, or until `--max-lifetime`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import itertools
import json
import resource
import signal
import sys
import time
from typing import Any, Final

from bench._proc import die_with_parent, parse_cpus, pin_to
from bench.cachemodel import CacheModel
from bench.work import CALLS_PER_CONVERSATION, MODEL, TOOL_NAME, call_id, key_for

MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 32 * 1024 * 1024
REASONING_CALLS: Final = ("The user wants four values. ", "I will look them up ", "in parallel.")
REASONING_TEXT: Final = ("All four results are back; ", "quote them.")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        if content.startswith('"'):  # some frameworks JSON-encode a string tool result
            try:
                decoded = json.loads(content)
            except ValueError:
                return content
            return decoded if isinstance(decoded, str) else content
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return "" if content is None else str(content)


def _usage(
    prompt_tokens: int, completion_tokens: int, reasoning_tokens: int, cached: int | None = None
) -> dict[str, Any]:
    if cached is None:
        cached = (prompt_tokens // 2) & ~63
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cached_tokens": cached,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.tool_steps = 0
        self.final_answers = 0
        self.errors = 0
        self.connections = 0
        self.client_connections = 0

    def as_dict(self) -> dict[str, Any]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": self.requests,
            "tool_steps": self.tool_steps,
            "final_answers": self.final_answers,
            "errors": self.errors,
            "connections": self.connections,
            "client_connections": self.client_connections,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "monotonic": time.monotonic(),
        }


class Reply:
    """What one chat request is answered with, built once for both wire modes."""

    __slots__ = ("content", "finish_reason", "reasoning", "tool_calls", "usage")

    def __init__(
        self,
        *,
        content: str,
        reasoning: tuple[str, ...],
        tool_calls: list[tuple[str, str, str]],
        usage: dict[str, Any],
    ) -> None:
        self.content = content
        self.reasoning = reasoning
        self.tool_calls = tool_calls  # (id, name, arguments JSON string)
        self.usage = usage
        self.finish_reason = "tool_calls" if tool_calls else "stop"


def conversation_base(messages: list[Any]) -> str:
    """The last word of the last user message: names the conversation (see bench.work)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            words = _text_of(message.get("content")).split()
            return words[-1] if words else "x"
    return "x"


def build_reply(
    request: dict[str, Any], body_size: int, stats: Stats,
    cache: tuple[float, float] | None = None,
) -> Reply:
    messages = request.get("messages")
    if not isinstance(messages, list):
        messages = []
    tool_messages: list[dict[str, Any]] = []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "tool":
            tool_messages.append(message)
        else:
            break
    tool_messages.reverse()
    prompt_tokens = max(1, body_size // 4)
    cached: int | None = None
    if cache is not None:
        prompt_tokens, cached = max(1, round(cache[0])), round(cache[1])
    if tool_messages:
        stats.final_answers += 1
        quoted = "; ".join(
            f"{m.get('tool_call_id', '?')}={_text_of(m.get('content'))}" for m in tool_messages
        )
        content = f"Here are the values: {quoted}."
        return Reply(
            content=content,
            reasoning=REASONING_TEXT,
            tool_calls=[],
            usage=_usage(prompt_tokens, 12 + len(content) // 4, 8, cached),
        )
    stats.tool_steps += 1
    base = conversation_base(messages)
    name = TOOL_NAME
    tools = request.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        function = tools[0].get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            name = function["name"]
    calls = [
        (call_id(i), name, json.dumps({"key": key_for(base, i)}))
        for i in range(CALLS_PER_CONVERSATION)
    ]
    return Reply(content="", reasoning=REASONING_CALLS, tool_calls=calls, usage=_usage(
        prompt_tokens, 60, 20, cached
    ))


def completion_body(reply: Reply, model: str, completion_id: str, created: int) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "reasoning_content": "".join(reply.reasoning),
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "index": index,
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            for index, (cid, name, arguments) in enumerate(reply.tool_calls)
        ]
    return _dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": reply.finish_reason,
                    "usage": reply.usage,
                }
            ],
            "usage": reply.usage,
        }
    )


def stream_events(
    reply: Reply, model: str, completion_id: str, created: int, trailing_usage: bool
) -> list[bytes]:
    """The SSE `data:` payloads of one streamed reply, in Kimi's order, ending with [DONE]."""
    return [event for group in stream_groups(
        reply, model, completion_id, created, trailing_usage) for event in group]


def stream_groups(
    reply: Reply, model: str, completion_id: str, created: int, trailing_usage: bool
) -> list[list[bytes]]:
    """`stream_events` cut where a paced stream pauses: one group per tool call (the first
    with the role and reasoning chunks, the last with the finish chunk and [DONE])."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        choice.update(extra)
        return _dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }
        )

    groups: list[list[bytes]] = [[chunk({"role": "assistant", "content": ""})]]
    groups[0] += [chunk({"reasoning_content": part}) for part in reply.reasoning]
    for index, (cid, name, arguments) in enumerate(reply.tool_calls):
        group = groups[0] if index == 0 else []
        header = {"index": index, "id": cid, "type": "function"}
        header["function"] = {"name": name, "arguments": ""}
        group.append(chunk({"tool_calls": [header]}))
        cut = len(arguments) // 2
        for fragment in (arguments[:cut], arguments[cut:]):
            group.append(chunk({"tool_calls": [{"index": index, "function": {
                "arguments": fragment}}]}))
        if index:
            groups.append(group)
    last = groups[-1]
    if reply.content:
        words = reply.content.split(" ")
        step = max(1, len(words) // 4)
        for start in range(0, len(words), step):
            piece = " ".join(words[start : start + step])
            last.append(chunk({"content": piece if start == 0 else " " + piece}))
    last.append(chunk({}, reply.finish_reason, usage=reply.usage))
    if trailing_usage:
        last.append(
            _dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": reply.usage,
                }
            )
        )
    last.append(b"[DONE]")
    return groups


class Request:
    __slots__ = ("body", "keep_alive", "method", "path")

    def __init__(self, method: str, path: str, body: bytes, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive


class ProtocolError(Exception):
    pass


def parse_request(buffer: bytearray) -> Request | None:
    """Take one complete request off the front of `buffer`, or None if it is not all here."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ProtocolError("header too large")
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise ProtocolError("bad request line") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        pos = start
        for _ in range(100_000):
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                consumed = trailer_end + 4
                break
            if len(buffer) < line_end + 2 + size + 2:
                return None
            body += buffer[line_end + 2 : line_end + 2 + size]
            if len(body) > MAX_BODY:
                raise ProtocolError("body too large")
            pos = line_end + 2 + size + 2
        else:
            raise ProtocolError("too many chunks")
        data = bytes(body)
    else:
        length = int(headers.get("content-length", "0") or "0")
        if length > MAX_BODY:
            raise ProtocolError("body too large")
        if len(buffer) < start + length:
            return None
        data = bytes(buffer[start : start + length])
        consumed = start + length
    del buffer[:consumed]
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method.upper(), target.split("?", 1)[0], data, keep_alive)


def route_options(path: str) -> tuple[float | None, float]:
    """(model latency in s or None for the default, tool-call gap in s) from the path's
    `lat<ms>` / `gap<ms>` segments."""
    latency: float | None = None
    gap = 0.0
    for segment in path.split("/"):
        if segment.startswith(("lat", "gap")) and segment[3:].replace(".", "", 1).isdigit():
            value = float(segment[3:]) / 1000.0
            if segment.startswith("lat"):
                latency = value
            else:
                gap = value
    return latency, gap


MAX_KEYS: Final = 20_000


class Gateway:
    """Shared state of the server: latency, counters, ids, probes."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.stats = Stats()
        self._ids = itertools.count(1)
        self.cache = CacheModel()
        self.captures: dict[str, bytes] = {}
        self.traces: dict[str, list[float]] = {}

    def next_id(self) -> int:
        return next(self._ids)

    def observe(self, payload: dict[str, Any], body: bytes) -> tuple[float, float] | None:
        """Record the probes of one chat request; its (prompt, cached) tokens if modelled."""
        messages = payload.get("messages")
        if isinstance(messages, list) and messages:
            base = conversation_base(messages)
            last = messages[-1]
            first_step = not (isinstance(last, dict) and last.get("role") == "tool")
            if base.startswith("cap-") and first_step and len(self.captures) < 100:
                self.captures.setdefault(base, body)
            if base.startswith("t-") and len(self.traces) < MAX_KEYS:
                self.traces.setdefault(base, []).append(time.monotonic())
        return self.cache.observe(payload)

    def probe(self, path: str) -> bytes | None:
        """The body of a `GET /_…` probe, None if unknown."""
        if path == "/_stats":
            return _dumps(self.stats.as_dict())
        kind, _, key = path[2:].partition("/")
        if kind == "capture":
            return self.captures.get(key, b"null")
        if kind == "trace":
            return _dumps(self.traces.get(key, []))
        if kind == "cache":
            return _dumps(self.cache.summary(key))
        return None


class Connection(asyncio.Protocol):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.gateway.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._drain()

    def eof_received(self) -> bool:
        return False

    def _drain(self) -> None:
        for _ in range(10_000):  # pipelined requests in one read: bounded
            if self.transport is None or self.busy:
                return
            try:
                request = parse_request(self.buffer)
            except (ProtocolError, ValueError):
                self.gateway.stats.errors += 1
                self._send_simple(400, b'{"error":{"message":"bad request","type":"x"}}', False)
                return
            if request is None:
                return
            if not self.counted and not request.path.startswith("/_"):
                self.counted = True  # a connection of a client, not of the harness's probes
                self.gateway.stats.client_connections += 1
            latency, _ = route_options(request.path)
            latency = self.gateway.latency_s if latency is None else latency
            if latency > 0 and not request.path.startswith("/_"):
                self.busy = True
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(latency, self._delayed, request)
                return
            self._respond(request)

    def _delayed(self, request: Request) -> None:
        self.timer = None
        self.busy = False
        if self.transport is not None:
            self._respond(request)
            self._drain()

    def _send_simple(self, status: int, body: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if not keep_alive:
            head += "Connection: close\r\n"
        transport.write(head.encode() + b"\r\n" + body)
        if not keep_alive:
            transport.close()
            self.transport = None

    def _respond(self, request: Request) -> None:
        gateway = self.gateway
        stats = gateway.stats
        stats.requests += 1
        if request.method == "GET" and request.path.startswith("/_"):
            found = gateway.probe(request.path)
            if found is not None:
                self._send_simple(200, found, request.keep_alive)
                return
        if request.method == "GET" and request.path.endswith("/models"):
            body = _dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            self._send_simple(200, body, request.keep_alive)
            return
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            stats.errors += 1
            self._send_simple(404, b'{"error":{"message":"not found","type":"x"}}', True)
            return
        try:
            payload = json.loads(request.body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            stats.errors += 1
            body = b'{"error":{"message":"invalid JSON body","type":"invalid_request_error"}}'
            self._send_simple(400, body, request.keep_alive)
            return
        cache = gateway.observe(payload, request.body)
        reply = build_reply(payload, len(request.body), stats, cache)
        number = gateway.next_id()
        completion_id = f"chatcmpl-{number:x}"
        model = str(payload.get("model") or MODEL)
        created = int(time.time())
        transport = self.transport
        if transport is None:
            return
        if not payload.get("stream"):
            body = completion_body(reply, model, completion_id, created)
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nMsh-Request-Id: {completion_id}\r\n"
            )
            if not request.keep_alive:
                head += "Connection: close\r\n"
            transport.write(head.encode() + b"\r\n" + body)
            self._finish(request)
            return
        options = payload.get("stream_options")
        trailing = isinstance(options, dict) and bool(options.get("include_usage"))
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
            f"Msh-Request-Id: {completion_id}\r\n"
        )
        if not request.keep_alive:
            head += "Connection: close\r\n"
        transport.write(head.encode() + b"\r\n")
        groups = stream_groups(reply, model, completion_id, created, trailing)
        _, gap = route_options(request.path)
        if gap <= 0 or len(groups) == 1:
            for group in groups:
                self._write_events(group)
            transport.write(b"0\r\n\r\n")
            self._finish(request)
            return
        self.busy = True  # paced: no other request on this connection until the reply ends
        self._paced(groups, 0, gap, request)

    def _write_events(self, events: list[bytes]) -> None:
        transport = self.transport
        if transport is None:
            return
        for event in events:
            data = b"data: " + event + b"\n\n"
            transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    def _paced(self, groups: list[list[bytes]], index: int, gap: float, request: Request) -> None:
        self.timer = None
        if self.transport is None:
            return
        self._write_events(groups[index])
        if index + 1 < len(groups):
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(gap, self._paced, groups, index + 1, gap, request)
            return
        self.transport.write(b"0\r\n\r\n")
        self.busy = False
        self._finish(request)
        self._drain()

    def _finish(self, request: Request) -> None:
        if not request.keep_alive and self.transport is not None:
            self.transport.close()
            self.transport = None


async def serve(host: str, port: int, latency_s: float, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    gateway = Gateway(latency_s)
    server = await loop.create_server(
        lambda: Connection(gateway), host, port, backlog=2048, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sockname = server.sockets[0].getsockname()
    print(f"READY http://{sockname[0]}:{sockname[1]}/v1", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="model latency (TTFB)")
    parser.add_argument("--max-lifetime", type=float, default=1800.0, help="hard stop, seconds")
    parser.add_argument("--cpus", default="", help="pin to these CPUs, e.g. '1'")
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error("the fake gateway only listens on loopback addresses")
    die_with_parent(args.max_lifetime)
    pin_to(parse_cpus(args.cpus))
    try:
        asyncio.run(serve(args.host, args.port, args.latency_ms / 1000.0))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
