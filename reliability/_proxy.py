"""`FaultProxy`: a raw HTTP fault injector on loopback, between a client and a server.

The gateway simulator makes the faults a gateway makes on purpose (error answers, a stream
dropped after some events, a slow first token). The network makes others the simulator cannot:
a connection reset before any byte, a response cut inside its headers, a body that stops and
goes silent, a server that accepts and never answers, bytes that trickle in a few at a time,
and bodies or SSE frames that are simply broken. The proxy forwards each request to the
upstream server (one request per connection: it asks for `Connection: close` both ways) and
applies the next fault that fires to that exchange:

- "reset": read the request, then close with a TCP reset (no byte answered);
- "close": read the request, then close cleanly with no answer (drop before headers);
- "silent": read the request and never answer (the connection stays open);
- "cut_headers": send half a status line and headers, then close;
- "cut_body": forward the upstream answer but close after `at` (0..1) of its body bytes
  (mid-JSON, or mid-SSE for a stream); "reset_body" does the same with a reset;
- "stall_body": like "cut_body" but then go silent instead of closing;
- "drip": forward the whole answer `piece` bytes at a time, `delay` seconds apart;
- "delay": wait `delay` seconds, then forward normally (a slow server);
- "respond": answer with `status`, `headers` and `body` as given (malformed bodies and frames,
  the gateway's own error envelopes), never asking upstream.

Faults fire in injection order on a schedule like the simulator's: the next `times`
connections (1 by default), a share (`rate`, from a seeded RNG), or `always`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from kimi_agent.testing._faults import strike

__all__ = ["FaultProxy", "ProxyFault", "ProxyFaultKind"]

ProxyFaultKind = Literal["reset", "close", "silent", "cut_headers", "cut_body", "reset_body",
                         "stall_body", "drip", "delay", "respond"]
_KINDS = frozenset(ProxyFaultKind.__args__)  # type: ignore[attr-defined]


@dataclass(eq=False)
class ProxyFault:
    """One injected fault; `fired` counts the connections it struck."""

    kind: ProxyFaultKind
    times: int | None = 1
    rate: float | None = None
    at: float = 0.5
    piece: int = 7
    delay: float = 0.002
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    fired: int = 0
    active: bool = True

    def cancel(self) -> None:
        self.active = False


class FaultProxy:
    """Forwards HTTP/1.1 to `upstream` (a URL such as the simulator's base URL) with faults.

    `async with proxy.serve() as base_url:` yields the proxy's URL with the upstream's path
    (e.g. `http://127.0.0.1:PORT/v1`). `connections` counts the exchanges handled.
    """

    def __init__(self, upstream: str, *, seed: int | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"the upstream needs a host and a port: {upstream!r}")
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path.rstrip("/")
        self.faults: list[ProxyFault] = []
        self.rng = random.Random(seed)
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def inject(self, kind: ProxyFaultKind, *, times: int | None = None,
               rate: float | None = None, always: bool = False, at: float = 0.5,
               piece: int = 7, delay: float = 0.002, status: int = 200,
               headers: Mapping[str, str] | None = None, body: bytes | str = b"") -> ProxyFault:
        """Add a fault (see the module docstring); returns it, `cancel()` removes it.

        Raises:
            ValueError: an unknown kind, or a schedule that does not make sense.
        """
        if kind not in _KINDS:
            raise ValueError(f"unknown proxy fault {kind!r}")
        if always and (times is not None or rate is not None):
            raise ValueError("always=True excludes times and rate")
        if times is None and rate is None and not always:
            times = 1
        if not 0.0 <= at <= 1.0:
            raise ValueError("at must be between 0 and 1")
        fault = ProxyFault(kind, times=times, rate=rate, at=at, piece=max(1, piece),
                           delay=delay, status=status, headers=dict(headers or {}),
                           body=body.encode() if isinstance(body, str) else body)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def _pick(self) -> ProxyFault | None:
        fault, self.faults = strike(self.faults, self.rng)
        return fault

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1") -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, host, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://{host}:{port}{self.path}"
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    # ------------------------------------------------------------------ one exchange

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                        ) -> None:
        request = await _read_request(reader)
        if request is None:
            return
        self.connections += 1
        fault = self._pick()
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "reset":
            _reset(writer)
            return
        if kind == "close":
            return
        if kind == "silent":
            await reader.read()          # until the client gives up and closes
            return
        if kind == "cut_headers":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMsh-Req")
            await writer.drain()
            return
        if fault is not None and kind == "respond":
            writer.write(_response(fault.status, fault.headers, fault.body))
            await writer.drain()
            return
        if fault is not None and kind == "delay":
            await asyncio.sleep(fault.delay)
        answer = await self._forward(request)
        if fault is None or kind == "delay":
            writer.write(answer)
            await writer.drain()
            return
        if kind == "drip":
            for start in range(0, len(answer), fault.piece):
                writer.write(answer[start:start + fault.piece])
                await writer.drain()
                await asyncio.sleep(fault.delay)
            return
        head_end = answer.find(b"\r\n\r\n") + 4
        cut = head_end + int((len(answer) - head_end) * fault.at)
        writer.write(answer[:cut])
        await writer.drain()
        if kind == "reset_body":
            _reset(writer)
        elif kind == "stall_body":
            await reader.read()

    async def _forward(self, request: bytes) -> bytes:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        try:
            upstream_writer.write(request)
            await upstream_writer.drain()
            return await upstream_reader.read()
        finally:
            upstream_writer.close()
            with contextlib.suppress(Exception):
                await upstream_writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request, with `Connection: close` in place of the client's own header."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    kept = [lines[0]]
    length = 0
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() in ("connection", "keep-alive"):
            continue
        kept.append(line)
    kept.append("Connection: close")
    body = await reader.readexactly(length) if length else b""
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1") + body


def _response(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
    names = {name.lower() for name in headers}
    if "content-type" not in names:
        lines.append("Content-Type: application/json; charset=utf-8")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    transport.abort()
