"""`EventChannel`: how a streamed run hands its events to the code iterating them.

One producer (the run, in a task of its own) and one consumer (the caller's `async for`), an
unbounded buffer, in order. It exists instead of an anyio memory object stream because that
costs two trips through the event loop for every event the consumer waits for (a checkpoint
before it looks, then the wake-up), and a streamed run's events mostly arrive one at a time:
here a buffered event is taken at once and a waiting consumer is woken once.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import anyio

__all__ = ["EventChannel"]

T = TypeVar("T")


class EventChannel(Generic[T]):
    """An unbounded single-producer, single-consumer channel (see the module docstring).

    `send` never waits; `close` ends the stream after what is buffered; `receive` raises
    `anyio.EndOfStream` once it is closed and empty. Sends after `discard` (the consumer has
    gone) are dropped.
    """

    __slots__ = ("_closed", "_discarded", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: anyio.Event | None = None
        self._closed = False
        self._discarded = False

    def send(self, item: T) -> None:
        """Buffer `item` and wake the consumer if it waits.

        Raises:
            anyio.ClosedResourceError: the channel was closed.
        """
        if self._discarded:
            return
        if self._closed:
            raise anyio.ClosedResourceError
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        """No more items: the consumer gets what is buffered, then the end."""
        self._closed = True
        self._wake()

    def discard(self) -> None:
        """The consumer has gone: drop what is buffered and whatever is sent later (a late
        reader gets the end at once)."""
        self._discarded = self._closed = True
        self._items.clear()
        self._wake()

    async def receive(self) -> T:
        """The next item, waiting for one if none is buffered.

        Raises:
            anyio.EndOfStream: the channel is closed and empty.
        """
        while True:
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise anyio.EndOfStream
            waiter = self._waiter = anyio.Event()
            await waiter.wait()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set()
