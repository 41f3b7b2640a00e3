"""A job running beside a block (a lock's or a slot's renewal), without changing what the
block raises, and without tying the block to one task.

The agent may enter a conversation lock in one task and leave it in another (a streamed run),
and an anyio task group must be left by the task that entered it, so the renewal runs as an
event-loop task of its own, cancelled and awaited when the block ends. The block's own
exception comes out as it was raised (no exception group).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["beside"]


@asynccontextmanager
async def beside(job: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run `job()` while the block runs; it is cancelled when the block ends. The job must
    not raise (log instead)."""
    task = asyncio.get_running_loop().create_task(job())
    try:
        yield
    finally:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
