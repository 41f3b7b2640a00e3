"""Server-sent events from a response body, as the HTML standard parses them.

Our own parser, so that it behaves the same on httpx and httpx2 responses and does what the
gateway needs: a leading byte-order mark is dropped; lines end in LF, CR or CRLF; the `data`
lines of one event are joined with LF; comments and other fields are ignored; each wait for
more bytes is bounded by the idle timeout (a silent stream is a typed error naming the phase,
not a hang); and after `[DONE]` the rest of the body is read to its end, bounded in bytes and
time, so the connection goes back to the pool instead of being closed.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator

import anyio

DONE = "[DONE]"
DRAIN_LIMIT = 64 * 1024
"""Bytes read after `[DONE]` to reuse the connection; a longer tail closes it instead."""
DRAIN_TIMEOUT = 2.0
"""Seconds allowed for that tail."""


class IdleTimeout(Exception):
    """No bytes arrived within the idle timeout."""


class SSEParser:
    """Feed decoded text; `feed` returns the `data` of each event completed by it."""

    __slots__ = ("_buffer", "_data", "_pending_cr", "_started")

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] | None = None
        self._started = False
        self._pending_cr = False

    def feed(self, text: str) -> list[str]:
        if not self._started:
            if not text:
                return []
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two reads
        self._pending_cr = False
        buffer = self._buffer + text
        events: list[str] = []
        start = 0
        length = len(buffer)
        while True:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            else:
                end = cr
                if cr + 1 < length:
                    next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
                else:
                    next_start = cr + 1
                    self._pending_cr = True
            self._line(buffer[start:end], events)
            start = next_start
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data is not None:
                events.append("\n".join(self._data))
                self._data = None
            return
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            if self._data is None:
                self._data = []
            self._data.append(value)


async def next_bytes(chunks: AsyncIterator[bytes], idle: float | None) -> bytes | None:
    """The next chunk of the body, None at its end.

    Raises:
        IdleTimeout: nothing arrived within `idle` seconds.
    """
    try:
        if idle is None:
            return await chunks.__anext__()
        with anyio.fail_after(idle):
            return await chunks.__anext__()
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise IdleTimeout from None


async def events(chunks: AsyncIterator[bytes], idle: float | None) -> AsyncIterator[str]:
    """The `data` of each event of a body, in order; ends at `[DONE]` (yielded) or at the end
    of the body.

    Raises:
        IdleTimeout: the body went silent for longer than `idle`.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    parser = SSEParser()
    while True:
        chunk = await next_bytes(chunks, idle)
        if chunk is None:
            for data in parser.feed(decoder.decode(b"", final=True)):
                yield data
            return
        for data in parser.feed(decoder.decode(chunk)):
            yield data
            if data == DONE:
                return


async def drain(chunks: AsyncIterator[bytes], *, limit: int = DRAIN_LIMIT,
                timeout: float = DRAIN_TIMEOUT) -> bool:
    """Read what is left of a body so its connection can be reused; False when the tail was
    longer than `limit` bytes or slower than `timeout` (the caller then closes it)."""
    read = 0
    with anyio.move_on_after(timeout):
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return True
            read += len(chunk)
            if read > limit:
                return False
    return False
