"""Serving the simulator on a real loopback socket with uvicorn.

`serve_app` binds a socket itself (port 0 = a free port chosen by the OS, no race), starts
uvicorn's server on the running asyncio loop and, on exit, shuts it down quickly: it stops
accepting, closes idle connections, lets in-flight answers finish for a short grace period,
then cancels what is left (the block is over: nobody will read those answers). It drives
uvicorn's `startup()` directly instead of `serve()`, to skip uvicorn's 0.1 s polling loop and
its signal handling (a test process keeps its own Ctrl-C). uvicorn runs on asyncio only.

`serve_in_thread` runs the same in a background thread with its own loop, for synchronous
code (`agent.run_sync`, scripts). `run_forever` is the blocking server of
`kimi-agent simulate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import uvicorn

from ._app import DroppedConnection

__all__ = ["run_forever", "serve_app", "serve_in_thread"]


_cancelled_by_us: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
"""Answers still running when a server stopped, cancelled by `_shutdown`."""


class _DropFilter(logging.Filter):
    """Keeps uvicorn from logging what we do on purpose as application errors: a
    `DroppedConnection`, and the cancellation of answers still running at shutdown."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DroppedConnection):
            return False
        if isinstance(exc, asyncio.CancelledError):
            try:
                task = asyncio.current_task()
            except RuntimeError:
                return True
            return task not in _cancelled_by_us
        return True


def _quiet_drops() -> None:
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in error_logger.filters):
        error_logger.addFilter(_DropFilter())


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _config(app: Any, grace: int, *, quiet: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        log_level=None if quiet else "info",
        access_log=not quiet,
        lifespan="off",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=grace,
    )


@contextlib.asynccontextmanager
async def serve_app(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, grace: float = 0.1
) -> AsyncIterator[str]:
    """Serve `app` on `host:port` while the block runs; yields `http://host:port`."""
    _quiet_drops()
    sock = _bind(host, port)
    server = uvicorn.Server(_config(app, max(1, int(grace)), quiet=True))
    config = server.config
    config.load()
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
        yield _url(host, sock.getsockname()[1])
    finally:
        await _shutdown(server, grace)
        sock.close()


async def _shutdown(server: uvicorn.Server, grace: float) -> None:
    server.should_exit = True
    servers = list(getattr(server, "servers", []))
    for listener in servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while server.server_state.tasks and loop.time() < deadline:
        await asyncio.sleep(0.005)
    tasks = list(server.server_state.tasks)
    for task in tasks:
        _cancelled_by_us.add(task)
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    for listener in servers:
        await listener.wait_closed()
    await asyncio.sleep(0)  # let closed transports run their connection_lost callbacks


@contextlib.contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a background thread while the block runs; yields `http://host:port`."""
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    result: dict[str, Any] = {}

    async def main() -> None:
        nonlocal stop, loop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            async with serve_app(app, host=host, port=port) as url:
                result["url"] = url
                ready.set()
                await stop.wait()
        except BaseException as exc:
            result["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(
        target=lambda: asyncio.run(main()), name="kimi-agent-simulator", daemon=True
    )
    thread.start()
    ready.wait()
    if "error" in result:
        thread.join()
        raise RuntimeError("the simulator could not start") from result["error"]
    try:
        yield str(result["url"])
    finally:
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join()


async def run_forever(
    app: Any, *, host: str, port: int, on_ready: Callable[[str], Awaitable[None] | None]
) -> None:
    """Serve `app` until Ctrl-C (uvicorn's signal handling), with uvicorn's usual logs."""
    _quiet_drops()
    sock = _bind(host, port)
    config = _config(app, 1, quiet=False)
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original(sockets=sockets)
        announced = on_ready(_url(host, sock.getsockname()[1]))
        if announced is not None:
            await announced

    server.startup = startup  # type: ignore[method-assign]
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
