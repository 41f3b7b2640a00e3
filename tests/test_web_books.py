"""The conversation book on every backend (SQLite, PostgreSQL, Redis — the same tests,
parametrized, on real servers): entries and queues, the owner of a new conversation, the
compare-and-set that keeps replicas from overwriting each other, run markers with leases,
typed errors when the server is down, and the URL forms of `open_book`."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_agent import Handoff
from kimi_agent.errors import (
    ConfigurationError,
    SessionError,
    SessionSchemaError,
    SessionStoreUnavailableError,
)
from kimi_agent.web import (
    Book,
    ConversationBook,
    PostgresBook,
    RedisBook,
    RunMarker,
    open_book,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def book_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A book URL of the kind the param names, empty and private to the test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'web.db'}"
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        return url
    redis_url: str = request.getfixturevalue("redis_url")
    return f"{redis_url}?prefix=b{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def books(book_url: str) -> AsyncIterator[tuple[Book, Book]]:
    """Two books on the same URL: two replicas' views of one book."""
    first, second = open_book(book_url), open_book(book_url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def marker(session_id: str, replica: str, run_id: str | None = None) -> RunMarker:
    return RunMarker(session_id, uuid.uuid4().hex, "u1", replica, run_id, 0.0)


async def test_entries_and_queues_are_shared_in_update_order(books: tuple[Book, Book]
                                                             ) -> None:
    a, b = books
    assert await a.get("会话-1") is None
    await a.set("会话-1", "顾客甲", "handoff", Handoff("complaint", "顾客投诉发货慢", "投诉专席"))
    await b.set("会话-2", "顾客乙", "handoff", Handoff("refund", "要求退款"))
    await a.set("会话-3", "顾客丙", "pending_approval")
    held = await b.with_status("handoff")
    assert [e.session_id for e in held] == ["会话-1", "会话-2"]        # oldest change first
    assert held[0].customer_id == "顾客甲"
    assert held[0].handoff == Handoff("complaint", "顾客投诉发货慢", "投诉专席")
    assert held[1].handoff == Handoff("refund", "要求退款", None)
    assert [e.session_id for e in await b.with_status("handoff", limit=1)] == ["会话-1"]
    assert [e.session_id for e in await b.with_status("pending_approval")] == ["会话-3"]
    await b.set("会话-1", "顾客甲", "active")                  # moves out of the hand-off queue
    assert [e.session_id for e in await a.with_status("handoff")] == ["会话-2"]
    entry = await a.get("会话-1")
    assert entry is not None and entry.status == "active" and entry.handoff is None
    assert entry.version == 2 and entry.updated_at.endswith("+00:00")
    assert [e.session_id for e in await a.with_status("active")] == ["会话-1"]


async def test_a_new_conversation_has_one_owner_and_changes_compare_versions(
        books: tuple[Book, Book]) -> None:
    a, b = books
    made = await a.create("会话-新", "顾客甲")
    assert (made.customer_id, made.status, made.version) == ("顾客甲", "active", 1)
    again = await b.create("会话-新", "顾客乙")                  # already somebody's
    assert again.customer_id == "顾客甲" and again.version == 1
    owners = set()

    async def create(book: Book, customer: str) -> None:
        owners.add((await book.create("会话-抢", customer)).customer_id)

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(create, (a, b)[n % 2], f"顾客{n}")
    assert len(owners) == 1                                    # both replicas agree

    await a.set("会话-新", "顾客甲", "handoff", Handoff("complaint", "投诉"))
    seen = await b.get("会话-新")
    assert seen is not None and seen.version == 2
    won = []

    async def release(book: Book) -> None:
        won.append(await book.set("会话-新", "顾客甲", "active", if_version=seen.version))

    async with anyio.create_task_group() as group:
        for book in (a, b, a, b):
            group.start_soon(release, book)
    assert sorted(won) == [False, False, False, True]          # exactly one release lands
    assert not await a.set("会话-新", "顾客甲", "handoff", if_version=2)   # stale: refused
    final = await b.get("会话-新")
    assert final is not None and final.status == "active" and final.version == 3
    assert not await a.set("没有的会话", "顾客甲", "active", if_version=1)
    assert await a.get("没有的会话") is None


async def test_run_markers_are_claimed_once_renewed_and_lapse(books: tuple[Book, Book]
                                                              ) -> None:
    a, b = books
    mine = marker("会话-1", "replica-a")
    assert await a.claim_run(mine, 30) == RunMarker(
        mine.session_id, mine.claim, "u1", "replica-a", None,
        (await a.claim_run(mine, 30)).expires_at)
    theirs = marker("会话-1", "replica-b")
    held = await b.claim_run(theirs, 30)
    assert held.claim == mine.claim and held.replica == "replica-a"   # busy on A
    assert await a.renew_run("会话-1", mine.claim, 30, run_id="run-甲")
    seen = await b.run_marker("会话-1")
    assert seen is not None and seen.run_id == "run-甲" and seen.replica == "replica-a"
    assert not await b.renew_run("会话-1", theirs.claim, 30)          # not B's to renew
    await b.end_run("会话-1", theirs.claim)                           # nor to end
    assert await a.run_marker("会话-1") is not None
    assert [m.session_id for m in await b.live_runs()] == ["会话-1"]
    await a.end_run("会话-1", mine.claim)
    assert await b.run_marker("会话-1") is None and await b.live_runs() == []
    assert (await b.claim_run(theirs, 30)).claim == theirs.claim      # free again

    # a replica that stops renewing (killed): its marker lapses, another takes over
    dead = marker("会话-2", "replica-dead")
    assert (await a.claim_run(dead, 0.5)).claim == dead.claim
    with anyio.fail_after(10):
        while await b.run_marker("会话-2") is not None:
            await anyio.sleep(0.1)
    heir = marker("会话-2", "replica-b")
    assert (await b.claim_run(heir, 30)).claim == heir.claim
    assert not await a.renew_run("会话-2", dead.claim, 30)            # too late
    assert {m.session_id for m in await a.live_runs()} == {"会话-1", "会话-2"}


async def test_of_many_replicas_claiming_at_once_one_wins(books: tuple[Book, Book]) -> None:
    a, b = books
    claims = [marker("会话-热", f"replica-{n}") for n in range(8)]
    winners = set()

    async def claim(n: int) -> None:
        winners.add((await (a, b)[n % 2].claim_run(claims[n], 30)).claim)

    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(claim, n)
    assert len(winners) == 1


async def test_of_many_replicas_taking_over_a_lapsed_marker_all_see_the_heir(
        books: tuple[Book, Book]) -> None:
    """Claims racing for lapsed markers: one wins each, and every other is told the
    winner's marker, never the lapsed one it raced over."""
    a, b = books
    sessions = [f"会话-接手-{n}" for n in range(30)]
    dead = {s: marker(s, "replica-dead") for s in sessions}
    for session_id in sessions:
        assert (await a.claim_run(dead[session_id], 0.5)).claim == dead[session_id].claim
    with anyio.fail_after(10):
        while await b.live_runs():
            await anyio.sleep(0.05)
    told: dict[str, list[str]] = {s: [] for s in sessions}

    async def claim(session_id: str, n: int) -> None:
        mine = marker(session_id, f"replica-{n}")
        told[session_id].append((await (a, b)[n % 2].claim_run(mine, 30)).claim)

    async with anyio.create_task_group() as group:
        for session_id in sessions:
            for n in range(8):
                group.start_soon(claim, session_id, n)
    for session_id, claims in told.items():
        assert len(set(claims)) == 1 and dead[session_id].claim not in claims, claims


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_book_whose_server_is_down_raises_a_typed_error() -> None:
    port = _closed_port()
    for book in (PostgresBook(f"postgresql://kimi@127.0.0.1:{port}/web", timeout=1),
                 RedisBook(f"redis://127.0.0.1:{port}/0", timeout=1)):
        try:
            with pytest.raises(SessionStoreUnavailableError, match=str(port)):
                await book.get("会话-1")
            with pytest.raises(SessionStoreUnavailableError):
                await book.claim_run(marker("会话-1", "replica-a"), 30)
        finally:
            await book.aclose()


async def test_a_sqlite_book_that_cannot_be_used_raises_a_session_error(tmp_path: Path
                                                                        ) -> None:
    """Not a raw sqlite3 error: the service's run markers catch `SessionError` only, and
    anything else escaping a marker's renewal would end every run of the service."""
    unusable = ConversationBook(tmp_path)                    # a folder, not a file
    with pytest.raises(SessionError, match="SQLite"):
        await unusable.get("会话-1")
    with pytest.raises(SessionError, match="SQLite"):
        await unusable.renew_run("会话-1", "claim", 30)


async def test_a_sqlite_book_opened_while_another_process_writes_waits_its_turn(
        tmp_path: Path) -> None:
    """Switching a new file to WAL fails at once while another connection writes (SQLite
    does not wait on the busy handler for it): the book retries instead of failing."""
    path = tmp_path / "web.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES ('另一个进程正在写')")

    def release() -> None:
        writer.execute("COMMIT")
        writer.close()

    async def release_later() -> None:
        await anyio.sleep(0.3)
        await anyio.to_thread.run_sync(release)

    book = ConversationBook(path)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(release_later)
            await book.set("s-1", "顾客甲", "active")
        entry = await book.get("s-1")
        assert entry is not None and entry.customer_id == "顾客甲"
    finally:
        await book.aclose()


async def test_open_book_takes_the_store_urls(tmp_path: Path) -> None:
    memory = open_book("memory")
    assert isinstance(memory, ConversationBook) and memory.path == ":memory:"
    path = tmp_path / "web.db"
    on_file = open_book(f"sqlite:///{path}")
    assert isinstance(on_file, ConversationBook) and on_file.path == str(path)
    await on_file.set("会话", "u1", "active")
    await on_file.aclose()
    assert isinstance(open_book("postgresql://bot@db.internal/support"), PostgresBook)
    redis_book = open_book("redis://cache:6379/0?prefix=shop:&lock_ttl=5")
    assert isinstance(redis_book, RedisBook) and redis_book.client.prefix == "shop:"
    assert "lock_ttl" not in redis_book.client.url
    for bad in ("mysql://db/x", "sqlite://relative.db", "web.db"):
        with pytest.raises(ConfigurationError, match="sqlite:///"):
            open_book(bad)


async def test_a_book_file_from_before_markers_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE web_conversations (session_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
            status TEXT NOT NULL, handoff_reason TEXT, handoff_summary TEXT,
            handoff_queue TEXT, updated_at TEXT NOT NULL) WITHOUT ROWID;
        INSERT INTO web_conversations VALUES ('会话-旧', 'u1', 'handoff', 'complaint',
            '顾客投诉', NULL, '2026-11-30T08:00:00.000+00:00');
    """)
    old.commit()
    old.close()
    book = ConversationBook(path)
    [entry] = await book.with_status("handoff")
    assert entry.handoff == Handoff("complaint", "顾客投诉", None) and entry.version == 1
    assert await book.set("会话-旧", "u1", "active", if_version=1)
    assert (await book.claim_run(marker("会话-旧", "r"), 30)).replica == "r"
    book.close()


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=_TEXT.filter(bool), summary=_TEXT, queue=st.none() | _TEXT,
       customer=st.from_regex(r"[\w.:@-]{1,40}", fullmatch=True))
def test_any_hand_off_text_comes_back_exactly(book_url: str, reason: str, summary: str,
                                              queue: str | None, customer: str) -> None:
    """Whatever a model puts in a hand-off (Chinese, emoji, NUL, quotes) is read back as it
    was written, on every backend."""
    async def roundtrip() -> None:
        book = open_book(book_url)
        try:
            session_id = f"会话-{uuid.uuid4().hex[:6]}"
            await book.set(session_id, customer, "handoff", Handoff(reason, summary, queue))
            entry = await book.get(session_id)
            assert entry is not None and entry.customer_id == customer
            assert entry.handoff == Handoff(reason, summary, queue)
            listed = [e for e in await book.with_status("handoff", limit=10_000)
                      if e.session_id == session_id]
            assert listed == [entry]
        finally:
            await book.aclose()

    anyio.run(roundtrip)


async def test_postgres_tables_of_the_same_name_that_are_not_ours_are_left_alone(
        postgres_database: str) -> None:
    import psycopg

    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute("CREATE TABLE kimi_agent_web_runs (id int)")
    book = PostgresBook(postgres_database)
    try:
        with pytest.raises(SessionSchemaError, match="kimi_agent_web_runs"):
            await book.get("会话-1")
    finally:
        await book.aclose()
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'kimi_agent_web_runs'").fetchall()
    assert columns == [("id",)]                                  # untouched


async def test_open_backend_shares_the_cap_through_the_store_server(tmp_path: Path) -> None:
    from kimi_agent.scale import PostgresLimiter, RedisLimiter
    from kimi_agent.web import WebOptions, open_backend

    async with open_backend(f"sqlite:///{tmp_path / 'web.db'}", concurrency=3) as local:
        assert local.concurrency == 3 and not local.shared
        assert isinstance(local.book, ConversationBook)
    async with open_backend("memory") as memory:
        assert memory.concurrency is None and memory.where == "memory"
    async with open_backend("postgresql://bot:secret@db.internal/support", concurrency=25,
                            api_key="sk-账号") as pg:
        assert isinstance(pg.concurrency, PostgresLimiter) and pg.shared
        assert pg.concurrency.key.startswith("gateway-") and "sk-" not in pg.concurrency.key
        assert "secret" not in pg.where and isinstance(pg.book, PostgresBook)
    async with open_backend("postgresql://bot@db.internal/support?password=secret&sslmode=require"
                            ) as in_query:
        assert in_query.where == ("postgresql://bot@db.internal/support?password=***"
                                  "&sslmode=require")
    async with open_backend("rediss://cache:6380/0?prefix=shop:&lock_ttl=5&ssl_ca_certs=/ca.pem",
                            concurrency=5, limiter_key="account-1") as redis:
        assert isinstance(redis.concurrency, RedisLimiter)
        for client in (redis.concurrency.client, redis.book.client, redis.store.client):
            assert client.url == "rediss://cache:6380/0?ssl_ca_certs=%2Fca.pem"  # TLS kept
        assert redis.concurrency.key == "account-1"
        assert redis.concurrency.client.prefix == "shop:"
        assert isinstance(redis.book, RedisBook) and redis.book.client.prefix == "shop:"
    with pytest.raises(ConfigurationError, match="postgresql://"):
        open_backend("mysql://db/shop")
    with pytest.raises(ConfigurationError, match="concurrency"):
        open_backend("memory", concurrency=0)
    with pytest.raises(ConfigurationError, match="run_lease"):
        WebOptions(secret="s" * 32, run_lease=0.1)
