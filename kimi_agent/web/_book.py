"""`ConversationBook`: what the web layer itself remembers about each conversation.

The session store keeps the messages; the book keeps, per session id, the customer it
belongs to and where the conversation stands, in a small SQLite table
(`web_conversations`):

- `active`: the bot answers;
- `pending_approval`: a run stopped on calls waiting for staff (the calls themselves are
  always read from the session with `agent.pending_approvals`, the book only says where to
  look, so staff can list them across conversations whatever the session store is);
- `handoff`: a hand-off gave the conversation to a person. It stays **held** (customer
  messages are refused, the widget stops sending) until staff release it.

Why a table of its own instead of reading the state back from the history: a hand-off
tool's result message does not say it was a hand-off, a release by staff leaves no trace in
the history, and listing "every held conversation" from histories would mean reading them
all. The table can live in the same SQLite file as the sessions (its own connection, WAL),
or in memory for tests.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

import anyio.to_thread

from kimi_agent import Handoff

__all__ = ["ConversationBook", "ConversationEntry", "ConversationStatus"]

ConversationStatus = Literal["active", "pending_approval", "handoff"]
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS web_conversations (
    session_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    handoff_reason TEXT,
    handoff_summary TEXT,
    handoff_queue TEXT,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS web_conversations_status
    ON web_conversations (status, updated_at);
"""
_COLUMNS = ("session_id, customer_id, status, handoff_reason, handoff_summary, handoff_queue, "
            "updated_at")


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    """One row of the book."""

    session_id: str
    customer_id: str
    status: ConversationStatus
    handoff: Handoff | None
    updated_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _entry(row: tuple[str, str, str, str | None, str | None, str | None, str]
           ) -> ConversationEntry:
    session_id, customer_id, status, reason, summary, queue, updated = row
    handoff = Handoff(reason, summary or "", queue) if reason is not None else None
    return ConversationEntry(session_id, customer_id, status, handoff,  # type: ignore[arg-type]
                             updated)


class ConversationBook:
    """The web layer's table of conversations (see the module docstring).

    `path` is a SQLite file (it may be the session store's own file) or `":memory:"`.
    Close with `close()`; the web app closes the book it made itself.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *,
                 timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ConversationBook({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the conversation book is closed")
        if self._connection is None:
            connection = sqlite3.connect(self.path, timeout=self.timeout,
                                         check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                return work(self._connect())
        return await anyio.to_thread.run_sync(call)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def get(self, session_id: str) -> ConversationEntry | None:
        """The row of `session_id` (None for a conversation the web layer never served)."""
        def work(db: sqlite3.Connection) -> ConversationEntry | None:
            row = db.execute(f"SELECT {_COLUMNS} FROM web_conversations WHERE session_id = ?",
                             (session_id,)).fetchone()
            return _entry(row) if row is not None else None
        return await self._run(work)

    async def set(self, session_id: str, customer_id: str, status: ConversationStatus,
                  handoff: Handoff | None = None) -> None:
        """Record where `session_id` stands (a hand-off's reason, summary and queue with it)."""
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO web_conversations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET customer_id = excluded.customer_id, "
                "status = excluded.status, handoff_reason = excluded.handoff_reason, "
                "handoff_summary = excluded.handoff_summary, "
                "handoff_queue = excluded.handoff_queue, updated_at = excluded.updated_at",
                (session_id, customer_id, status,
                 handoff.reason if handoff else None, handoff.summary if handoff else None,
                 handoff.queue if handoff else None, _now()))
        await self._run(work)

    async def with_status(self, status: ConversationStatus, *, limit: int = 200
                          ) -> list[ConversationEntry]:
        """The conversations in `status`, oldest change first (a queue's order)."""
        def work(db: sqlite3.Connection) -> list[ConversationEntry]:
            rows = db.execute(f"SELECT {_COLUMNS} FROM web_conversations WHERE status = ? "
                              "ORDER BY updated_at, session_id LIMIT ?",
                              (status, limit)).fetchall()
            return [_entry(row) for row in rows]
        return await self._run(work)
