"""The real components the suite relies on work here: each fixture of `tests/_services.py`
starts its server and a real client talks to it, with Chinese text."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import PostgresServer, RedisServer, ServiceMissing
from tests._services import Screenshots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- PostgreSQL -------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_postgres_keeps_chinese_text(postgres_database: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_database) as conn:
        await conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        await conn.execute("INSERT INTO notes (body) VALUES (%s)",
                           ("订单 #42 已发货，预计明天送达",))
        await conn.commit()
        cur = await conn.execute("SELECT body, length(body) FROM notes")
        assert await cur.fetchone() == ("订单 #42 已发货，预计明天送达", 17)


@pytest.mark.anyio
async def test_postgres_pool_connects_to_the_shared_server(postgres_url: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(postgres_url, min_size=1, max_size=3, open=False) as pool:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT %s::text || '，世界'", ("你好",))
            assert await cur.fetchone() == ("你好，世界",)


def test_postgres_restarted_and_crashed_keeps_committed_rows(
        make_postgres_server: Callable[[], PostgresServer]) -> None:
    import psycopg

    server = make_postgres_server()
    url = server.url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (body text)")
        conn.execute("INSERT INTO t VALUES ('退款已批准')")
    with psycopg.connect(url, autocommit=True) as conn:
        server.crash()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    server.start()
    assert server.url() == url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES ('转人工')")
    server.restart()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT body FROM t ORDER BY body").fetchall()
    assert sorted(r[0] for r in rows) == sorted(["退款已批准", "转人工"])


# -- Redis ------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_redis_keeps_chinese_text(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await client.set("services:greeting", "您好，请问有什么可以帮您？")
        assert await client.get("services:greeting") == "您好，请问有什么可以帮您？"
    finally:
        await client.delete("services:greeting")
        await client.aclose()


def test_persistent_redis_survives_crash_and_restart(
        make_redis_server: Callable[..., RedisServer]) -> None:
    import redis

    server: RedisServer = make_redis_server(persistent=True)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    client.set("订单:42", "已发货")
    server.crash()
    with pytest.raises(redis.ConnectionError):
        client.get("订单:42")
    server.start()
    assert client.get("订单:42") == "已发货"
    client.rpush("日志", "第一步", "第二步")
    server.restart()
    assert client.lrange("日志", 0, -1) == ["第一步", "第二步"]
    client.close()


def test_plain_redis_restart_starts_empty(make_redis_server: Callable[..., RedisServer]) -> None:
    import redis

    server: RedisServer = make_redis_server()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    client.set("临时", "1")
    server.restart()
    assert client.get("临时") is None
    client.close()


def test_a_missing_redis_server_says_how_to_install_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceMissing, match=r"scripts/install-test-deps\.sh"):
        RedisServer(tmp_path / "redis")


# -- Chromium ---------------------------------------------------------------------------------

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>客服</title>
<style>body{font:24px sans-serif;margin:24px} span{display:inline-block;padding:2px}</style>
</head><body><h1>您好，我是客服小助手</h1><p id="status">正在查询订单…</p>
<p><span id="a">你</span><span id="b">好</span><span id="c">谢</span></p></body></html>"""


@pytest.fixture
def chinese_page_url() -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 serving one Chinese page."""
    body = PAGE.encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_chromium_renders_chinese_and_saves_a_screenshot(
        page: Any, chinese_page_url: str, screenshots: Screenshots) -> None:
    await page.goto(chinese_page_url)
    assert await page.title() == "客服"
    assert await page.inner_text("#status") == "正在查询订单…"
    shot = await screenshots.take(page, "客服页面")
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2_000
    # Without a CJK font every character draws as the same empty box: distinct characters
    # must give distinct pictures.
    glyphs = {await page.locator(f"#{i}").screenshot() for i in "abc"}
    assert len(glyphs) == 3


def test_sync_browser_for_plain_tests(sync_browser: Any, chinese_page_url: str,
                                      screenshots: Screenshots) -> None:
    context = sync_browser.new_context(locale="zh-CN")
    try:
        tab = context.new_page()
        tab.goto(chinese_page_url)
        assert tab.inner_text("h1") == "您好，我是客服小助手"
        assert screenshots.take_sync(tab, "sync").read_bytes().startswith(PNG_MAGIC)
    finally:
        context.close()


# -- DBOS -------------------------------------------------------------------------------------

def _run_a_durable_workflow(url: str, app: str) -> None:
    from dbos import DBOS, SetWorkflowID

    executed: list[str] = []

    DBOS(config={"name": app, "system_database_url": url, "log_level": "WARNING"})

    @DBOS.step(name=f"{app}.lookup")
    def lookup(order: str) -> str:
        executed.append(order)
        return f"订单 {order} 已发货"

    @DBOS.workflow(name=f"{app}.answer")
    def answer(order: str) -> str:
        return lookup(order) + "，预计明天送达。"

    DBOS.launch()
    with SetWorkflowID(f"{app}-wf-1"):
        first = answer("42")
    with SetWorkflowID(f"{app}-wf-1"):  # the same workflow again: its result, no re-execution
        again = answer("42")
    assert first == again == "订单 42 已发货，预计明天送达。"
    assert executed == ["42"]
    status = DBOS.get_workflow_status(f"{app}-wf-1")
    assert status is not None and status.status == "SUCCESS"


def test_dbos_runs_a_workflow_on_sqlite(dbos_sqlite_url: str) -> None:
    _run_a_durable_workflow(dbos_sqlite_url, "svc-sqlite")
    assert Path(dbos_sqlite_url.removeprefix("sqlite:///")).is_file()


def test_dbos_runs_a_workflow_on_postgres(dbos_postgres_url: str) -> None:
    _run_a_durable_workflow(dbos_postgres_url, "svc-postgres")


# -- MCP and OpenTelemetry --------------------------------------------------------------------

@pytest.mark.anyio
async def test_mcp_server_time_answers_over_stdio(mcp_server_time_command: list[str]) -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp.types import TextContent

    params = StdioServerParameters(command=mcp_server_time_command[0],
                                   args=mcp_server_time_command[1:])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert "get_current_time" in names
        result = await session.call_tool("get_current_time", {"timezone": "Asia/Shanghai"})
        assert not result.is_error  # mcp 2.x: snake_case fields
        (content,) = result.content
        assert isinstance(content, TextContent) and "Asia/Shanghai" in content.text


def test_opentelemetry_sdk_records_spans_in_memory() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("kimi-agent-tests").start_as_current_span("查询订单") as span:
        span.set_attribute("kimi.question", "我的订单在哪里？")
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "查询订单"
    assert finished.attributes == {"kimi.question": "我的订单在哪里？"}
