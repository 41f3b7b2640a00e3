"""`kimi-agent sessions copy SRC DST` between SQLite, PostgreSQL and Redis on real servers:
every conversation (messages and state) round-trips exactly, existing conversations are
refused unless `--replace`, progress and the count check go to stderr, bad URLs are errors."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_agent.cli._sessions import open_store
from kimi_agent.wire import AssistantMessage, Message, UserMessage
from tests.clikit import run_cli
from tests.test_sessions_sqlite import conversation

pytestmark = pytest.mark.anyio


def conversations() -> dict[str, tuple[list[Message], dict[str, Any]]]:
    made: dict[str, tuple[list[Message], dict[str, Any]]] = {}
    for i in range(12):
        messages = [*conversation(), UserMessage(content=f"第{i}位客户：谢谢！"),
                    AssistantMessage(content=f"不客气 {i} 😊", model="kimi-k2-6")]
        state: dict[str, Any] = {"kimi_agent.window_start": i} if i % 2 else {}
        if i == 3:
            state["kimi_agent.active_agent"] = "投诉专员"
        made[f"客户-{i:02d}"] = (messages, state)
    return made


async def contents(url: str) -> dict[str, tuple[list[Message], dict[str, Any]]]:
    store = open_store(url)
    try:
        found = {}
        for session_id in await store.list_sessions():
            session = store.session(session_id)
            found[session_id] = (await session.get_items(), await session.get_all_state())
        return found
    finally:
        await store.aclose()


async def cli(tmp_path: Path, *args: str) -> Any:
    return await anyio.to_thread.run_sync(lambda: run_cli(tmp_path / "home", *args,
                                                          timeout=120))


async def test_copy_round_trips_sqlite_postgres_redis_and_back(
        tmp_path: Path, postgres_database: str, redis_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'support.db'}"
    expected = conversations()
    store = open_store(source)
    for session_id, (messages, state) in expected.items():
        await store.session(session_id).add_items(messages)
        for key, value in state.items():
            await store.session(session_id).set_state(key, value)
    order = await store.list_sessions()
    await store.aclose()

    redis = f"{redis_url}?prefix=copy{uuid.uuid4().hex[:8]}:"
    back = f"sqlite:///{tmp_path / 'back.db'}"
    for src, dst in ((source, postgres_database), (postgres_database, redis), (redis, back)):
        done = await cli(tmp_path, "sessions", "copy", src, dst)
        assert done.returncode == 0, done.stderr
        assert "copying [" in done.stderr and "12/12" in done.stderr
        assert "copied 12 conversations (96 messages)" in done.stderr
        assert "counts checked" in done.stderr
        assert await contents(dst) == expected
    store = open_store(back)
    assert await store.list_sessions() == order, "most recently updated first is kept"
    await store.aclose()


async def test_existing_conversations_are_refused_unless_replace(
        tmp_path: Path, postgres_database: str) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    store = open_store(source)
    await store.session("老客户").add_items([UserMessage(content="新的历史")])
    await store.aclose()
    target = open_store(postgres_database)
    await target.session("老客户").add_items([UserMessage(content="旧的历史"),
                                             AssistantMessage(content="旧回答")])
    await target.aclose()

    refused = await cli(tmp_path, "sessions", "copy", source, postgres_database)
    assert refused.returncode == 1
    assert "already exist" in refused.stderr and "'老客户'" in refused.stderr
    assert [m.content for m in (await contents(postgres_database))["老客户"][0]] == [
        "旧的历史", "旧回答"], "nothing was written"

    replaced = await cli(tmp_path, "sessions", "copy", source, postgres_database, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert [m.content for m in (await contents(postgres_database))["老客户"][0]] == ["新的历史"]


async def test_bad_store_urls_are_errors(tmp_path: Path) -> None:
    missing = await cli(tmp_path, "sessions", "copy", f"sqlite:///{tmp_path / 'nope.db'}",
                        f"sqlite:///{tmp_path / 'b.db'}")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    unknown = await cli(tmp_path, "sessions", "copy", "mysql://x/y", "sqlite:///b.db")
    assert unknown.returncode == 1 and "names no session store" in unknown.stderr
    same = await cli(tmp_path, "sessions", "copy", "sqlite:///b.db", "sqlite:///b.db")
    assert same.returncode == 1 and "the same store" in same.stderr
