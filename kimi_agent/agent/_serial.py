"""One run per conversation at a time.

In this process, runs on the same conversation (the same session object, or two session
objects naming the same conversation in the same store) queue on an in-process lock. Across
processes, a session that offers `lock(timeout=...)` (a shared store's conversation lock) is
held for the whole run as well. A run that waits longer than allowed raises
`ConversationBusyError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from kimi_agent.errors import ConversationBusyError
from kimi_agent.sessions._protocol import Session

_locks: dict[Hashable, tuple[anyio.Lock, int]] = {}
"""Conversation key → (lock, holders + waiters); an entry lives only while it is used."""


def conversation_key(session: Session) -> Hashable:
    """What names a conversation: the store's own key when it gives one, else the object."""
    key = getattr(session, "conversation_key", None)
    if key is not None:
        return (type(session).__qualname__, key)
    return ("object", id(session))


@asynccontextmanager
async def one_run_at_a_time(session: Session | None, timeout: float | None
                            ) -> AsyncIterator[None]:
    """Hold the conversation of `session` for the block (nothing without a session).

    Raises:
        ConversationBusyError: the conversation stayed held by another run for `timeout`
            seconds.
    """
    if session is None:
        yield
        return
    key = conversation_key(session)
    lock, users = _locks.get(key, (None, 0))
    if lock is None:
        lock = anyio.Lock()
    _locks[key] = (lock, users + 1)
    try:
        with anyio.move_on_after(timeout) as waited:
            await lock.acquire()
        if waited.cancelled_caught:
            raise ConversationBusyError(
                f"session {session.session_id!r} is busy: another run on it did not finish "
                f"within {timeout:g} s")
        try:
            shared = _shared_lock(session, timeout)
            if shared is None:
                yield
            else:
                try:
                    await shared.__aenter__()
                except TimeoutError:  # a store's lock that says so in its own way
                    raise ConversationBusyError(
                        f"session {session.session_id!r} is busy: another replica holds it "
                        f"(waited {timeout:g} s)") from None
                try:
                    yield
                except BaseException as error:
                    with anyio.CancelScope(shield=True):
                        if not await shared.__aexit__(type(error), error,
                                                      error.__traceback__):
                            raise
                else:
                    with anyio.CancelScope(shield=True):
                        await shared.__aexit__(None, None, None)
        finally:
            lock.release()
    finally:
        lock, users = _locks[key]
        if users <= 1:
            del _locks[key]
        else:
            _locks[key] = (lock, users - 1)


def _shared_lock(session: Session, timeout: float | None
                 ) -> AbstractAsyncContextManager[Any] | None:
    lock = getattr(session, "lock", None)
    if lock is None or not callable(lock):
        return None
    return lock(timeout=timeout)  # type: ignore[no-any-return]
