"""A job running beside a block (a lock's or a slot's renewal), without changing what the
block raises.

An anyio task group wraps whatever its body raises in an `ExceptionGroup`; a lock held around
a whole run must hand the run's own error through unchanged (the agent and the gateway client
act on its type), so a group of one is unwrapped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["beside"]


@asynccontextmanager
async def beside(job: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run `job()` while the block runs; it is cancelled when the block ends. The job must
    not raise (log instead); the block's own exception comes out as it was raised."""
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(job)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
    except BaseExceptionGroup as raised:
        if len(raised.exceptions) == 1:
            raise raised.exceptions[0] from raised.exceptions[0].__cause__
        raise
