"""`PostgresBook`: the conversation book in PostgreSQL, shared by every replica (see `_book`).

Tables `kimi_agent_web_conversations` (a hand-off as JSON text) and `kimi_agent_web_runs`,
created on first use beside the session store's tables, with their own row
(`kimi_agent.web`) in the `kimi_agent_schema` version table, under the same
transaction-scoped advisory lock as the store's migrations, so replicas starting together
create them once. Every change is one statement (atomic);
times are the server's clock (`clock_timestamp()`), so replicas' clocks do not matter.
Connections come from a `PgPool` like the store's: a server that is down raises
`SessionStoreUnavailableError`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import anyio
import psycopg

from kimi_agent import Handoff
from kimi_agent.errors import SessionError, SessionSchemaError
from kimi_agent.sessions._pg_common import _MIGRATION_LOCK, PgPool
from kimi_agent.web._book import (
    ConversationEntry,
    ConversationStatus,
    RunMarker,
    check_status,
)

__all__ = ["BOOK_SCHEMA_VERSION", "PostgresBook"]

BOOK_SCHEMA_VERSION = 1
"""1: conversations (with a version per row) and run markers."""
_COMPONENT = "kimi_agent.web"
_TABLES = ("kimi_agent_web_conversations", "kimi_agent_web_runs")
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE kimi_agent_web_conversations (
            session_id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            status TEXT NOT NULL,
            handoff TEXT,
            version BIGINT NOT NULL DEFAULT 1,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())""",
        """CREATE INDEX kimi_agent_web_conversations_status
            ON kimi_agent_web_conversations (status, updated_at, session_id)""",
        """CREATE TABLE kimi_agent_web_runs (
            session_id TEXT PRIMARY KEY,
            claim TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            replica TEXT NOT NULL,
            run_id TEXT,
            expires_at TIMESTAMPTZ NOT NULL)""",
        "CREATE INDEX kimi_agent_web_runs_expiry ON kimi_agent_web_runs (expires_at)",
    ],
}
_COLUMNS = "session_id, customer_id, status, handoff, updated_at, version"
_RUN_COLUMNS = ("session_id, claim, customer_id, replica, run_id, "
                "extract(epoch FROM expires_at)::float8 AS expires")


def _entry(row: tuple[Any, ...]) -> ConversationEntry:
    session_id, customer_id, status, handoff_json, updated, version = row
    handoff = None
    if handoff_json is not None:
        fields = json.loads(handoff_json)
        handoff = Handoff(fields["reason"], fields["summary"], fields["queue"])
    stamp = updated.astimezone(UTC).isoformat(timespec="milliseconds") \
        if isinstance(updated, datetime) else str(updated)
    return ConversationEntry(session_id, customer_id, check_status(status), handoff, stamp,
                             int(version))


def _handoff_json(handoff: Handoff | None) -> str | None:
    """A hand-off as JSON text: PostgreSQL text cannot hold NUL characters, which JSON
    escapes (a model's summary may contain anything), so nothing is lost."""
    if handoff is None:
        return None
    return json.dumps({"reason": handoff.reason, "summary": handoff.summary,
                       "queue": handoff.queue}, ensure_ascii=False)


def _marker(row: tuple[Any, ...]) -> RunMarker:
    session_id, claim, customer_id, replica, run_id, expires = row
    return RunMarker(session_id, claim, customer_id, replica, run_id, float(expires))


class PostgresBook:
    """The conversation book in PostgreSQL at `url` (see the module docstring).

    `timeout` bounds waiting for a connection; `max_connections` sizes the pool.

    Raises:
        SessionError: `url` is not a PostgreSQL URL.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, max_connections: int = 4) -> None:
        self.pool = PgPool(url, min_size=0, max_size=max_connections, timeout=timeout)
        self._ready = False
        self._readying = anyio.Lock()

    def __repr__(self) -> str:
        return f"PostgresBook({self.pool.where!r})"

    async def aclose(self) -> None:
        """Close the pool. Idempotent."""
        await self.pool.close()

    async def _execute(self, what: str, sql: str, params: tuple[Any, ...]
                       ) -> list[tuple[Any, ...]]:
        await self._ensure(what)
        async with self.pool.connection(what) as connection:
            cursor = await connection.execute(sql, params)
            if cursor.description is None:
                return [(cursor.rowcount,)]
            return await cursor.fetchall()

    async def _upserted(self, what: str, sql: str, params: tuple[Any, ...]
                        ) -> tuple[Any, ...]:
        """The row an insert-or-read statement gives. Such a statement reads with the
        snapshot it started with, so a row a concurrent replica committed meanwhile can
        make it return nothing: run it again (a new snapshot sees that row)."""
        for _ in range(5):
            rows = await self._execute(what, sql, params)
            if rows:
                return rows[0]
        raise SessionError(f"cannot {what} in PostgreSQL at {self.pool.where}: the row "
                           "kept changing under it")

    async def _ensure(self, what: str) -> None:
        if self._ready:
            return
        async with self._readying:
            if self._ready:
                return
            async with self.pool.connection(what) as connection:
                await _ensure_schema(connection, self.pool.where)
            self._ready = True

    async def get(self, session_id: str) -> ConversationEntry | None:
        """The entry of `session_id` (None for a conversation the web layer never served)."""
        rows = await self._execute(
            f"read conversation {session_id!r}",
            f"SELECT {_COLUMNS} FROM kimi_agent_web_conversations WHERE session_id = %s",
            (session_id,))
        return _entry(rows[0]) if rows else None

    async def create(self, session_id: str, customer_id: str) -> ConversationEntry:
        """The entry of `session_id`, made `active` for `customer_id` if there is none."""
        row = await self._upserted(
            f"create conversation {session_id!r}",
            "WITH made AS (INSERT INTO kimi_agent_web_conversations "
            "(session_id, customer_id, status) VALUES (%s, %s, 'active') "
            f"ON CONFLICT (session_id) DO NOTHING RETURNING {_COLUMNS}) "
            f"SELECT {_COLUMNS} FROM made UNION ALL "
            f"SELECT {_COLUMNS} FROM kimi_agent_web_conversations WHERE session_id = %s",
            (session_id, customer_id, session_id))
        return _entry(row)

    async def set(self, session_id: str, customer_id: str, status: ConversationStatus,
                  handoff: Handoff | None = None, *, if_version: int | None = None) -> bool:
        """Record where `session_id` stands; with `if_version`, only if the entry is still
        at that version. Returns whether it was written.

        Raises:
            ValueError: an unknown `status`.
        """
        check_status(status)
        values = (customer_id, status, _handoff_json(handoff))
        what = f"record conversation {session_id!r}"
        if if_version is not None:
            rows = await self._execute(
                what, "UPDATE kimi_agent_web_conversations SET customer_id = %s, status = %s, "
                "handoff = %s, updated_at = clock_timestamp(), version = version + 1 "
                "WHERE session_id = %s AND version = %s", (*values, session_id, if_version))
            return bool(rows[0][0] == 1)
        await self._execute(
            what, "INSERT INTO kimi_agent_web_conversations (session_id, customer_id, status, "
            "handoff) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (session_id) DO UPDATE SET customer_id = excluded.customer_id, "
            "status = excluded.status, handoff = excluded.handoff, "
            "updated_at = clock_timestamp(), "
            "version = kimi_agent_web_conversations.version + 1", (session_id, *values))
        return True

    async def with_status(self, status: ConversationStatus, *, limit: int = 200
                          ) -> list[ConversationEntry]:
        """The conversations in `status`, oldest change first (a queue's order)."""
        rows = await self._execute(
            f"list {status} conversations",
            f"SELECT {_COLUMNS} FROM kimi_agent_web_conversations WHERE status = %s "
            "ORDER BY updated_at, session_id LIMIT %s", (status, limit))
        return [_entry(row) for row in rows]

    # ------------------------------------------------------------------ run markers

    async def claim_run(self, marker: RunMarker, lease: float) -> RunMarker:
        """Put `marker` on its conversation unless a live one is there; the one in force.

        The statement's snapshot may still hold the lapsed marker that a concurrent claim
        just replaced (its update is what refused ours): only a live marker is an answer,
        else the statement runs again and reads the heir."""
        row = await self._upserted(
            f"claim a run of {marker.session_id!r}",
            "WITH put AS (INSERT INTO kimi_agent_web_runs AS r "
            "(session_id, claim, customer_id, replica, run_id, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (session_id) DO UPDATE SET claim = excluded.claim, "
            "customer_id = excluded.customer_id, replica = excluded.replica, "
            "run_id = excluded.run_id, expires_at = excluded.expires_at "
            "WHERE r.expires_at <= clock_timestamp() "
            f"RETURNING {_RUN_COLUMNS}) "
            "SELECT * FROM put UNION ALL "
            f"SELECT {_RUN_COLUMNS} FROM kimi_agent_web_runs WHERE session_id = %s "
            "AND expires_at > clock_timestamp()",
            (marker.session_id, marker.claim, marker.customer_id, marker.replica,
             marker.run_id, lease, marker.session_id))
        return _marker(row)

    async def renew_run(self, session_id: str, claim: str, lease: float, *,
                        run_id: str | None = None) -> bool:
        """Extend the marker of `claim` (and record `run_id`); False if it is not its."""
        rows = await self._execute(
            f"renew the run marker of {session_id!r}",
            "UPDATE kimi_agent_web_runs SET expires_at = clock_timestamp() + "
            "make_interval(secs => %s), run_id = coalesce(%s, run_id) "
            "WHERE session_id = %s AND claim = %s AND expires_at > clock_timestamp()",
            (lease, run_id, session_id, claim))
        return bool(rows[0][0] == 1)

    async def end_run(self, session_id: str, claim: str) -> None:
        """Remove the marker of `claim`."""
        await self._execute(f"end the run marker of {session_id!r}",
                            "DELETE FROM kimi_agent_web_runs WHERE session_id = %s "
                            "AND claim = %s", (session_id, claim))

    async def run_marker(self, session_id: str) -> RunMarker | None:
        """The live marker of `session_id`, if any."""
        rows = await self._execute(
            f"read the run marker of {session_id!r}",
            f"SELECT {_RUN_COLUMNS} FROM kimi_agent_web_runs WHERE session_id = %s "
            "AND expires_at > clock_timestamp()", (session_id,))
        return _marker(rows[0]) if rows else None

    async def live_runs(self, *, limit: int = 200) -> list[RunMarker]:
        """Every live marker, soonest to lapse first."""
        rows = await self._execute(
            "list run markers",
            f"SELECT {_RUN_COLUMNS} FROM kimi_agent_web_runs "
            "WHERE expires_at > clock_timestamp() ORDER BY expires_at, session_id LIMIT %s",
            (limit,))
        return [_marker(row) for row in rows]


async def _ensure_schema(connection: psycopg.AsyncConnection[Any], where: str) -> None:
    """Create or migrate the book's tables to `BOOK_SCHEMA_VERSION` (once, under the
    store's advisory lock).

    Raises:
        SessionSchemaError: the tables exist without our version row, or are newer.
    """
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await connection.execute("CREATE TABLE IF NOT EXISTS kimi_agent_schema "
                                 "(component TEXT PRIMARY KEY, version INT NOT NULL)")
        cursor = await connection.execute(
            "SELECT version FROM kimi_agent_schema WHERE component = %s", (_COMPONENT,))
        row = await cursor.fetchone()
        version = int(row[0]) if row is not None else 0
        if version > BOOK_SCHEMA_VERSION:
            raise SessionSchemaError(
                f"PostgreSQL at {where} has kimi-agent web schema version {version}, newer "
                f"than this kimi-agent understands ({BOOK_SCHEMA_VERSION}): upgrade kimi-agent")
        if version == 0:
            cursor = await connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "current_schema() AND table_name = ANY(%s)", (list(_TABLES),))
            found = sorted(r[0] for r in await cursor.fetchall())
            if found:
                raise SessionSchemaError(
                    f"PostgreSQL at {where} has tables named {', '.join(found)} that "
                    "kimi_agent_schema does not account for: they are not kimi-agent's")
        for target in range(version + 1, BOOK_SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                await connection.execute(statement)
        if version < BOOK_SCHEMA_VERSION:
            await connection.execute(
                "INSERT INTO kimi_agent_schema (component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (_COMPONENT, BOOK_SCHEMA_VERSION))
