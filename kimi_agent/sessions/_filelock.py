"""The conversation lock of `SQLiteSession`: one run per conversation across processes.

Each conversation has a lock file in a folder next to the database (`support.db` →
`support.db-locks/<hash of the session id>.lock`), locked with `fcntl.flock`. The kernel drops
the lock when the holding process exits or is killed, so a crashed run never leaves it held,
and the next run repairs the unanswered step. The files are tiny and are left in place: deleting
a lock file while another process waits on it would let two processes hold "the same" lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from kimi_agent.errors import ConversationBusyError, SessionError

__all__ = ["conversation_file_lock", "lock_path"]


def lock_path(database: str, session_id: str) -> str:
    """The lock file of `session_id` in the database file `database`."""
    digest = hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:40]
    return os.path.join(os.path.realpath(database) + "-locks", f"{digest}.lock")


@asynccontextmanager
async def conversation_file_lock(database: str, session_id: str,
                                 timeout: float | None) -> AsyncIterator[None]:
    """Hold the lock file of `session_id` for the block.

    Raises:
        ConversationBusyError: another process held it for `timeout` seconds.
        SessionError: the lock folder or file cannot be created.
    """
    path = lock_path(database, session_id)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise SessionError(f"cannot create the lock file of session {session_id!r} "
                           f"({path}): {error}") from error
    try:
        pause = 0.01
        with anyio.move_on_after(timeout) as waited:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await anyio.sleep(pause)
                    pause = min(pause * 1.5, 0.2)
        if waited.cancelled_caught:
            raise ConversationBusyError(
                f"session {session_id!r} is busy: another process's run held it for "
                f"{timeout:g} s")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
