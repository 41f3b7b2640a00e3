"""The conversation book: what the web layer itself remembers about each conversation.

The session store keeps the messages; the book keeps, per session id, the customer it
belongs to and where the conversation stands:

- `active`: the bot answers;
- `pending_approval`: a run stopped on calls waiting for staff (the calls themselves are
  always read from the session with `agent.pending_approvals`, the book only says where to
  look, so staff can list them across conversations whatever the session store is);
- `handoff`: a hand-off gave the conversation to a person. It stays **held** (customer
  messages are refused, the widget stops sending) until staff release it.

It also keeps a **run marker** per conversation while a run is under way: which replica runs
it (and the run id once known), with a lease the replica renews while the run lives. Every
replica reads the markers, so a run started on replica A shows as `running` on replica B
and B refuses a second message at once; a killed replica stops renewing and its marker
expires after the lease.

Why a table of its own instead of reading the state back from the history: a hand-off
tool's result message does not say it was a hand-off, a release by staff leaves no trace in
the history, and listing "every held conversation" from histories would mean reading them
all. Three implementations share the `Book` protocol: `ConversationBook` (SQLite, or memory
for tests), `PostgresBook` and `RedisBook` (shared by replicas); `open_book(url)` opens the
one a store URL names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kimi_agent import Handoff
from kimi_agent.errors import ConfigurationError

__all__ = ["STATUSES", "Book", "ConversationEntry", "ConversationStatus", "RunMarker",
           "open_book"]

ConversationStatus = Literal["active", "pending_approval", "handoff"]
STATUSES: tuple[ConversationStatus, ...] = ("active", "pending_approval", "handoff")


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    """One conversation of the book. `version` grows by one with every change (for
    `set(..., if_version=...)`); `updated_at` is an ISO 8601 time in UTC."""

    session_id: str
    customer_id: str
    status: ConversationStatus
    handoff: Handoff | None
    updated_at: str
    version: int = 1


@dataclass(frozen=True, slots=True)
class RunMarker:
    """A run under way in a conversation, as every replica sees it.

    `claim` is the token of the replica's claim (made before the run has an id), `run_id`
    the run's id once it started (None until then), `replica` the name of the process that
    runs it, `expires_at` when the marker lapses unless renewed (seconds since the epoch).
    """

    session_id: str
    claim: str
    customer_id: str
    replica: str
    run_id: str | None
    expires_at: float


@runtime_checkable
class Book(Protocol):
    """What the web service needs of a conversation book (see the module docstring).

    Every method may raise `SessionError` (a `SessionStoreUnavailableError` when the
    book's server is down), like the session stores.
    """

    async def get(self, session_id: str) -> ConversationEntry | None:
        """The entry of `session_id` (None for a conversation the web layer never served)."""
        ...

    async def create(self, session_id: str, customer_id: str) -> ConversationEntry:
        """The entry of `session_id`, made `active` for `customer_id` if there is none (one
        atomic step: of two replicas creating it at once, both see the same owner)."""
        ...

    async def set(self, session_id: str, customer_id: str, status: ConversationStatus,
                  handoff: Handoff | None = None, *, if_version: int | None = None) -> bool:
        """Record where `session_id` stands (a hand-off's reason, summary and queue with it),
        atomically. With `if_version`, only if the entry is still at that version; returns
        whether it was written."""
        ...

    async def with_status(self, status: ConversationStatus, *, limit: int = 200
                          ) -> list[ConversationEntry]:
        """The conversations in `status`, oldest change first (a queue's order)."""
        ...

    async def claim_run(self, marker: RunMarker, lease: float) -> RunMarker:
        """Put `marker` on its conversation for `lease` seconds unless a live marker is
        there; returns the marker in force afterwards (`marker` itself when claimed)."""
        ...

    async def renew_run(self, session_id: str, claim: str, lease: float, *,
                        run_id: str | None = None) -> bool:
        """Extend the marker of `claim` by `lease` seconds (and record `run_id`); False when
        the marker is no longer this claim's (it lapsed and another replica took over)."""
        ...

    async def end_run(self, session_id: str, claim: str) -> None:
        """Remove the marker of `claim` (nothing if it is not this claim's any more)."""
        ...

    async def run_marker(self, session_id: str) -> RunMarker | None:
        """The live marker of `session_id`, if any."""
        ...

    async def live_runs(self, *, limit: int = 200) -> list[RunMarker]:
        """The live markers of every conversation, soonest to lapse first."""
        ...

    async def aclose(self) -> None:
        """Release the book's connections. Idempotent."""
        ...


def iso(timestamp: float) -> str:
    """`timestamp` (seconds since the epoch) as the book's ISO 8601 UTC text."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def check_status(status: str) -> ConversationStatus:
    """`status` if it is one of `STATUSES`.

    Raises:
        ValueError: it is not.
    """
    if status not in STATUSES:
        raise ValueError(f"a conversation status is one of {', '.join(STATUSES)}, not "
                         f"{status!r}")
    return status


def open_book(url: str) -> Book:
    """The conversation book beside the session store a URL names (the URL forms of
    `kimi-agent sessions` and `kimi-agent serve --store`):

    - `memory` (or `sqlite://:memory:`): an in-memory `ConversationBook`;
    - `sqlite:///relative.db`, `sqlite:////absolute.db`: a `ConversationBook` in that file;
    - `postgresql://…` / `postgres://…`: a `PostgresBook` (tables `kimi_agent_web_*`);
    - `redis://…`, `rediss://…`, `unix://…`: a `RedisBook` (keys `{prefix}web:…`; the
      `prefix=` query parameter as for `RedisStore`; `lock_ttl=` is ignored).

    Nothing is connected until first use.

    Raises:
        ConfigurationError: the URL names no known store.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else url.lower()
    if url in ("memory", "sqlite://:memory:", "sqlite:///:memory:"):
        from kimi_agent.web._book_sqlite import ConversationBook

        return ConversationBook()
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise ConfigurationError(f"a SQLite book URL is sqlite:///relative.db or "
                                     f"sqlite:////absolute.db, not {url!r}")
        from kimi_agent.web._book_sqlite import ConversationBook

        return ConversationBook(path)
    if scheme in ("postgresql", "postgres"):
        from kimi_agent.web._book_pg import PostgresBook

        return PostgresBook(url)
    if scheme in ("redis", "rediss", "unix"):
        from kimi_agent.web._book_redis import RedisBook

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = dict(query).get("prefix", "kimi_agent:")
        rest = urlencode([(k, v) for k, v in query if k not in ("prefix", "lock_ttl")])
        return RedisBook(urlunsplit(parts._replace(query=rest)), prefix=prefix)
    raise ConfigurationError(
        f"{url!r} names no conversation book: use memory, sqlite:///file.db, "
        "postgresql://… or redis://…")

