"""`ConversationBook`: the conversation book in SQLite (or in memory), see `_book`.

Two tables, `web_conversations` (one row per conversation) and `web_runs` (the run markers),
which can live in the same SQLite file as the sessions (their own connection, WAL) so that
several processes on one host share them, or in memory for tests. Every change is one
statement, so it is atomic across the processes that share the file; times are this host's
clock (every process on one SQLite file runs on the same host).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from kimi_agent import Handoff
from kimi_agent.errors import SessionError
from kimi_agent.sessions._sqlite import enable_wal
from kimi_agent.web._book import (
    ConversationEntry,
    ConversationStatus,
    RunMarker,
    check_status,
    iso,
)

__all__ = ["ConversationBook"]

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
CREATE TABLE IF NOT EXISTS web_runs (
    session_id TEXT PRIMARY KEY,
    claim TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    replica TEXT NOT NULL,
    run_id TEXT,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""
_COLUMNS = ("session_id, customer_id, status, handoff_reason, handoff_summary, handoff_queue, "
            "updated_at, version")
_RUN_COLUMNS = "session_id, claim, customer_id, replica, run_id, expires_at"
Row = tuple[str, str, str, str | None, str | None, str | None, str, int]


def _entry(row: Row) -> ConversationEntry:
    session_id, customer_id, status, reason, summary, queue, updated, version = row
    handoff = Handoff(reason, summary or "", queue) if reason is not None else None
    return ConversationEntry(session_id, customer_id, check_status(status), handoff, updated,
                             version)


def _marker(row: tuple[str, str, str, str, str | None, float]) -> RunMarker:
    return RunMarker(*row)


class ConversationBook:
    """The conversation book in a SQLite file (see the module docstring).

    `path` is a SQLite file (it may be the session store's own file) or `":memory:"`.
    Close with `close()` (or `await aclose()`); the web app closes the book it made itself.
    Every method raises `SessionError` when the file cannot be read or written, as the
    `Book` protocol says (and `RuntimeError` once the book is closed).
    A file written by an older kimi-agent (without the `version` column or `web_runs`) is
    brought up to date on first use.
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
            try:
                if self.path != ":memory:":
                    # the store's switch: retried while another connection holds the file
                    # (SQLite does not wait on the busy handler for a journal-mode change)
                    enable_wal(connection, self.timeout)
                connection.executescript(_SCHEMA)
                columns = {row[1] for row in connection.execute(
                    "PRAGMA table_info(web_conversations)")}
                if "version" not in columns:
                    try:
                        connection.execute("ALTER TABLE web_conversations ADD COLUMN version "
                                           "INTEGER NOT NULL DEFAULT 1")
                    except sqlite3.OperationalError as error:   # another process just did
                        if "duplicate column" not in str(error):
                            raise
            except BaseException:
                connection.close()      # the next call opens afresh
                raise
            self._connection = connection
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                try:
                    return work(self._connect())
                except sqlite3.Error as error:   # the Book protocol's error, as the store's
                    raise SessionError(f"the conversation book in SQLite database "
                                       f"{self.path!r} failed: {type(error).__name__}: "
                                       f"{error}") from error
        return await anyio.to_thread.run_sync(call)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def aclose(self) -> None:
        """`close()`, for the `Book` protocol."""
        self.close()

    async def get(self, session_id: str) -> ConversationEntry | None:
        """The entry of `session_id` (None for a conversation the web layer never served)."""
        def work(db: sqlite3.Connection) -> ConversationEntry | None:
            row = db.execute(f"SELECT {_COLUMNS} FROM web_conversations WHERE session_id = ?",
                             (session_id,)).fetchone()
            return _entry(row) if row is not None else None
        return await self._run(work)

    async def create(self, session_id: str, customer_id: str) -> ConversationEntry:
        """The entry of `session_id`, made `active` for `customer_id` if there is none."""
        def work(db: sqlite3.Connection) -> ConversationEntry:
            db.execute(f"INSERT INTO web_conversations ({_COLUMNS}) "
                       "VALUES (?, ?, 'active', NULL, NULL, NULL, ?, 1) "
                       "ON CONFLICT (session_id) DO NOTHING",
                       (session_id, customer_id, iso(time.time())))
            row = db.execute(f"SELECT {_COLUMNS} FROM web_conversations WHERE session_id = ?",
                             (session_id,)).fetchone()
            return _entry(row)
        return await self._run(work)

    async def set(self, session_id: str, customer_id: str, status: ConversationStatus,
                  handoff: Handoff | None = None, *, if_version: int | None = None) -> bool:
        """Record where `session_id` stands; with `if_version`, only if the entry is still
        at that version. Returns whether it was written.

        Raises:
            ValueError: an unknown `status`.
        """
        check_status(status)
        values = (customer_id, status, handoff.reason if handoff else None,
                  handoff.summary if handoff else None, handoff.queue if handoff else None,
                  iso(time.time()))

        def work(db: sqlite3.Connection) -> bool:
            if if_version is not None:
                cursor = db.execute(
                    "UPDATE web_conversations SET customer_id = ?, status = ?, "
                    "handoff_reason = ?, handoff_summary = ?, handoff_queue = ?, "
                    "updated_at = ?, version = version + 1 "
                    "WHERE session_id = ? AND version = ?",
                    (*values, session_id, if_version))
                return cursor.rowcount == 1
            db.execute(
                f"INSERT INTO web_conversations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (session_id) DO UPDATE SET customer_id = excluded.customer_id, "
                "status = excluded.status, handoff_reason = excluded.handoff_reason, "
                "handoff_summary = excluded.handoff_summary, "
                "handoff_queue = excluded.handoff_queue, updated_at = excluded.updated_at, "
                "version = web_conversations.version + 1",
                (session_id, *values))
            return True
        return await self._run(work)

    async def with_status(self, status: ConversationStatus, *, limit: int = 200
                          ) -> list[ConversationEntry]:
        """The conversations in `status`, oldest change first (a queue's order)."""
        def work(db: sqlite3.Connection) -> list[ConversationEntry]:
            rows = db.execute(f"SELECT {_COLUMNS} FROM web_conversations WHERE status = ? "
                              "ORDER BY updated_at, session_id LIMIT ?",
                              (status, limit)).fetchall()
            return [_entry(row) for row in rows]
        return await self._run(work)

    # ------------------------------------------------------------------ run markers

    async def claim_run(self, marker: RunMarker, lease: float) -> RunMarker:
        """Put `marker` on its conversation unless a live one is there; the one in force."""
        def work(db: sqlite3.Connection) -> RunMarker:
            now = time.time()
            db.execute(
                f"INSERT INTO web_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET claim = excluded.claim, "
                "customer_id = excluded.customer_id, replica = excluded.replica, "
                "run_id = excluded.run_id, expires_at = excluded.expires_at "
                "WHERE web_runs.expires_at <= ?",
                (marker.session_id, marker.claim, marker.customer_id, marker.replica,
                 marker.run_id, now + lease, now))
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM web_runs WHERE session_id = ?",
                             (marker.session_id,)).fetchone()
            return _marker(row)
        return await self._run(work)

    async def renew_run(self, session_id: str, claim: str, lease: float, *,
                        run_id: str | None = None) -> bool:
        """Extend the marker of `claim` (and record `run_id`); False if it is not its."""
        def work(db: sqlite3.Connection) -> bool:
            now = time.time()
            cursor = db.execute(
                "UPDATE web_runs SET expires_at = ?, run_id = coalesce(?, run_id) "
                "WHERE session_id = ? AND claim = ? AND expires_at > ?",
                (now + lease, run_id, session_id, claim, now))
            return cursor.rowcount == 1
        return await self._run(work)

    async def end_run(self, session_id: str, claim: str) -> None:
        """Remove the marker of `claim`."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM web_runs WHERE session_id = ? AND claim = ?",
                       (session_id, claim))
        await self._run(work)

    async def run_marker(self, session_id: str) -> RunMarker | None:
        """The live marker of `session_id`, if any."""
        def work(db: sqlite3.Connection) -> RunMarker | None:
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM web_runs "
                             "WHERE session_id = ? AND expires_at > ?",
                             (session_id, time.time())).fetchone()
            return _marker(row) if row is not None else None
        return await self._run(work)

    async def live_runs(self, *, limit: int = 200) -> list[RunMarker]:
        """Every live marker, soonest to lapse first."""
        def work(db: sqlite3.Connection) -> list[RunMarker]:
            rows = db.execute(f"SELECT {_RUN_COLUMNS} FROM web_runs WHERE expires_at > ? "
                              "ORDER BY expires_at, session_id LIMIT ?",
                              (time.time(), limit)).fetchall()
            return [_marker(row) for row in rows]
        return await self._run(work)
