"""Sync tools run in daemon worker threads.

A sync function cannot be interrupted: when its call times out or its run is cancelled, the
thread keeps going and the call is abandoned. anyio's and asyncio's worker threads are not
daemon threads, so one blocked tool would keep the interpreter from ever exiting. The
threads here are daemons, reused while idle (for up to `IDLE_SECONDS`), one call at a time.

On an event loop other than asyncio's (trio through anyio), `anyio.to_thread` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["run_in_thread"]

IDLE_SECONDS = 10.0

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any],
             contextvars.Context]

_idle: list[_Worker] = []
_lock = threading.Lock()


class _Worker(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="kimi-agent tool", daemon=True)
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            try:
                loop, future, func, context = self.jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with _lock:
                    if self in _idle and self.jobs.empty():
                        _idle.remove(self)
                        return
                continue
            outcome: tuple[bool, Any]
            try:
                outcome = (True, context.run(func))
            except BaseException as exc:  # delivered to the awaiting task, whatever it is
                outcome = (False, exc)
            with _lock:
                _idle.append(self)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_deliver, future, outcome)
            del outcome, func, context, future


def _deliver(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if not future.done():
        future.set_result(outcome)


async def run_in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`func(*args, **kwargs)` in a daemon thread; abandoned (left running) if cancelled.

    The function sees the caller's context variables. Its exception is raised here as is.
    """
    call = functools.partial(func, *args, **kwargs)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio through anyio
        import anyio.to_thread

        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
    with _lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
        worker.jobs.put((loop, future, call, contextvars.copy_context()))
        worker.start()
    else:
        worker.jobs.put((loop, future, call, contextvars.copy_context()))
    ok, value = await future
    if ok:
        return value
    raise value
