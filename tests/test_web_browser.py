"""The widget and the staff console in a real browser: headless Chromium (Debian's
`chromium` package) driven by playwright against the shop bot on a loopback port.

A customer asks where an order is (the answer streams in, the tool progress shows), asks
for a refund (it waits for approval), staff approve it in the console in a second page, the
widget continues by itself; a complaint hands the conversation to a person and the widget
says so and stops sending. The widget is also embedded in a host page by its script tag.
Screenshots of each state go to artifacts/browser/ (git-ignored).

This test never skips: without Chromium it fails and says how to install it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from kimi_agent.testing import Latency
from kimi_agent.web import mint_customer_token
from tests.webkit import SECRET, STAFF_KEY, serve, shop_web

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT = 30_000   # ms: generous for a loaded CI machine; nothing here measures time


def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "",
                      shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("the browser tests need Debian's Chromium: run "
                "`apt-get install -y chromium fonts-wqy-microhei` (scripts/install-test-deps.sh "
                "does it); playwright's own browser download is not used", pytrace=False)


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the browser tests need the playwright package: pip install -e '.[dev]'",
                    pytrace=False)
    async with async_playwright() as playwright:
        chrome = await playwright.chromium.launch(executable_path=chromium_path(),
                                                  args=CHROMIUM_ARGS)
        try:
            yield chrome
        finally:
            await chrome.close()


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_widget_and_staff_console_in_chromium(tmp_path: Path) -> None:
    from playwright.async_api import expect

    # a slow-ish model, so that the answer is seen while it is being written
    latency = Latency(first_token=0.15, tokens_per_second=40)
    async with shop_web(tmp_path, latency=latency, tool_latency=True,
                        title="小象优选 · 在线客服",
                        greeting="您好！我是小象，请问有什么可以帮您？") as web, \
            browser() as chrome:
        token = mint_customer_token(SECRET, "u1001")
        context = await chrome.new_context(viewport={"width": 480, "height": 820},
                                           locale="zh-CN")
        widget = await context.new_page()
        # every progress line the widget ever shows, however briefly
        await widget.add_init_script("""
            window.progressSeen = [];
            new MutationObserver(() => {
              for (const s of document.querySelectorAll('.step')) {
                if (!window.progressSeen.includes(s.textContent))
                  window.progressSeen.push(s.textContent);
              }
            }).observe(document, {subtree: true, childList: true, characterData: true});
        """)
        problems: list[str] = []
        widget.on("pageerror", lambda error: problems.append(str(error)))
        widget.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await widget.goto(f"{web.url}/widget#token={token}")
        await widget.get_by_text("您好！我是小象").wait_for(timeout=WAIT)
        assert await widget.title() == "小象优选 · 在线客服"

        # 1. where is my order: tool progress, then the answer streaming in
        box = widget.get_by_label("输入消息")
        await box.fill("你好！我的订单 A1024 到哪了？")
        await box.press("Enter")
        await widget.locator(".step.ok", has_text="已查询订单").wait_for(timeout=WAIT)
        await widget.locator(".step.ok", has_text="已查询物流").wait_for(timeout=WAIT)
        seen = await widget.evaluate("window.progressSeen")
        assert "正在查询订单…" in seen and "正在查询物流…" in seen, seen
        # the answer (step 2) caught while it is being written
        streaming = widget.locator(".bubble.streaming", has_text="订单 A1024（")
        await streaming.wait_for(timeout=WAIT)
        partial = await streaming.inner_text()
        await shot(widget, "1-answer-streaming")
        answer = widget.locator(".row.bot .bubble", has_text="SF1402938475612")
        await answer.wait_for(timeout=WAIT)
        await widget.locator(".bubble.streaming").wait_for(state="detached", timeout=WAIT)
        final = await answer.inner_text()
        assert final.startswith(partial) and len(partial) < len(final), (partial, final)
        assert await widget.locator(".step.ok").count() == 2
        await shot(widget, "2-order-answered")

        # 2. a refund: it waits for staff, and the widget stops taking messages meanwhile
        await box.fill("上个月买的保温杯（订单 A1025）有一个杯盖漏水，能退一个杯子的钱吗？")
        await box.press("Enter")
        waiting = widget.locator(".card.pending", has_text="等待工作人员审核")
        await waiting.wait_for(timeout=WAIT)
        await expect(box).to_be_disabled(timeout=WAIT)
        await shot(widget, "3-refund-waiting")
        await widget.locator(".step.waiting", has_text="提交退款申请 · 等待审核").wait_for(
            timeout=WAIT)
        # a reload brings the history and the waiting refund back from the server
        await widget.reload()
        await widget.locator(".card.pending", has_text="等待工作人员审核").wait_for(timeout=WAIT)
        await widget.locator(".step.waiting", has_text="提交退款申请 · 等待审核").wait_for(
            timeout=WAIT)
        await widget.locator(".step.ok", has_text="已查询物流").wait_for(timeout=WAIT)
        await widget.locator(".row.bot .bubble", has_text="SF1402938475612").wait_for(
            timeout=WAIT)
        await expect(box).to_be_disabled(timeout=WAIT)

        # 3. staff approve it in the console, in a second page
        console = await context.new_page()
        console.on("pageerror", lambda error: problems.append(str(error)))
        await console.set_viewport_size({"width": 1100, "height": 820})
        await console.goto(f"{web.url}/staff")
        await console.get_by_placeholder("请输入工作人员密钥").fill(STAFF_KEY)
        await console.get_by_role("button", name="登录").click()
        item = console.locator("#approvals .item", has_text="u1001")
        await item.wait_for(timeout=WAIT)
        assert "A1025" in await item.inner_text() and "退款申请" in await item.inner_text()
        await shot(console, "4-staff-approval")
        await item.get_by_role("button", name="批准").click()
        await console.locator("#approvals .empty").wait_for(timeout=WAIT)

        # 4. the widget continues by itself with the approved refund
        await widget.locator(".card.approved").wait_for(timeout=WAIT)
        await widget.locator(".row.bot .bubble", has_text="退款单号 RF").wait_for(timeout=WAIT)
        await widget.locator(".step.ok", has_text="已提交退款申请").wait_for(timeout=WAIT)
        await expect(box).to_be_enabled(timeout=WAIT)
        await shot(widget, "5-refund-approved")

        # 5. a complaint: handed to a person, the widget says so and stops sending
        await box.fill("说实话你们这次发货太慢了，我要投诉！")
        await box.press("Enter")
        notice = widget.locator("#notice", has_text="人工客服")
        await notice.wait_for(timeout=WAIT)
        assert "投诉专席" in await notice.inner_text()
        await expect(box).to_be_disabled(timeout=WAIT)
        await shot(widget, "6-handoff-notice")
        requests = len(web.sim.requests)
        sent = await widget.locator(".row.user").count()
        await box.evaluate("(input) => { input.disabled = false; input.value = '在吗？'; }")
        await widget.evaluate("document.getElementById('composer').requestSubmit()")
        # the widget sends nothing; the server would refuse it too (held_by_person)
        assert await widget.locator(".row.user").count() == sent + 1
        await widget.locator(".card.error", has_text="人工客服").wait_for(timeout=WAIT)
        assert len(web.sim.requests) == requests                # nothing went to the bot

        held = console.locator("#handoffs .item", has_text="投诉专席")
        await held.wait_for(timeout=WAIT)
        assert "u1001" in await held.inner_text()
        await held.get_by_role("button", name="查看对话").click()
        await console.locator("#conversation .msg.user", has_text="我要投诉").wait_for(
            timeout=WAIT)
        await shot(console, "7-staff-handoff-queue")

        # a reload keeps the state: history back, still held
        await widget.reload()
        await widget.locator("#notice", has_text="人工客服").wait_for(timeout=WAIT)
        await widget.locator(".row.user .bubble", has_text="A1024").wait_for(timeout=WAIT)
        # the one refused request above is the only failure the pages met
        assert [p for p in problems if "status of 409" not in p] == [], problems
        await context.close()


async def test_widget_embedded_by_script_tag(tmp_path: Path) -> None:
    async with shop_web(tmp_path) as web, browser() as chrome:
        token = mint_customer_token(SECRET, "u1002")
        page = await chrome.new_page(viewport={"width": 1000, "height": 760}, locale="zh-CN")
        host = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"></head><body>'
                f'<h1>小象优选</h1><p>欢迎光临！</p>'
                f'<script src="{web.url}/static/embed.js" data-token="{token}" async></script>'
                f'</body></html>')

        # the host site: a server of its own on another loopback origin
        async def home(request: Any) -> HTMLResponse:
            return HTMLResponse(host)

        async with serve(Starlette(routes=[Route("/", home)])) as shop:
            await page.goto(shop.replace("127.0.0.1", "localhost") + "/")
            await embedded(page, web)


async def embedded(page: Any, web: Any) -> None:
    """The launcher opens the widget in its frame; the customer talks in it."""
    launcher = page.get_by_role("button", name="在线客服")
    await launcher.click()
    frame = page.frame_locator("iframe[title='在线客服']")
    await frame.get_by_text("请问有什么可以帮您").wait_for(timeout=WAIT)
    await frame.get_by_label("输入消息").fill("订单 A1026 发货了吗？")
    await frame.get_by_label("输入消息").press("Enter")
    await frame.locator(".row.bot .bubble", has_text="尚未发货").wait_for(timeout=WAIT)
    await shot(page, "0-embedded-widget")
    items = await web.store.session("u1002").get_items()
    assert [m.content for m in items if m.role == "user"] == ["订单 A1026 发货了吗？"]


async def test_widget_waits_for_a_run_on_another_replica(tmp_path: Path) -> None:
    """Two replicas on one store and one book: the widget opened on B while A answers shows
    the reply under way without asking B for A's events (409 `run_on_other_replica`) in a
    loop, and shows A's answer from the shared history once it ended."""
    import anyio
    import httpx
    from kimi_agent_tools.demo.bot import build_agent, make_deps
    from kimi_agent_tools.demo.scenario import shop_responder

    from examples.web_service import shop_deps
    from kimi_agent import GatewayClient, SQLiteStore
    from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
    from kimi_agent.web import ConversationBook, WebOptions, create_app

    held = anyio.Event()
    release = anyio.Event()

    async def responder(request: SimRequest) -> Reply:
        if not release.is_set():
            held.set()
            await release.wait()
        return shop_responder(request)

    sim = GatewaySimulator(responder=responder)
    shared, _ = make_deps(tmp_path / "shop.db", customer_id=None, latency=False)
    options = WebOptions(secret=SECRET, staff_key=STAFF_KEY, title="小象优选 · 在线客服")
    db = tmp_path / "sessions.db"
    async with sim.serve() as base, GatewayClient(base, sim.api_key) as client, \
            SQLiteStore(db) as store_a, SQLiteStore(db) as store_b:
        agent = build_agent(client)
        book_a, book_b = ConversationBook(db), ConversationBook(db)
        app_a = create_app(agent, store_a, options, deps=shop_deps(shared), book=book_a)
        app_b = create_app(agent, store_b, options, deps=shop_deps(shared), book=book_b)
        async with serve(app_a) as url_a, serve(app_b) as url_b, browser() as chrome, \
                anyio.create_task_group() as group:
            headers = {"authorization": f"Bearer {mint_customer_token(SECRET, 'u1001')}",
                       "accept": "application/json"}
            answers: list[Any] = []

            async def ask_a() -> None:
                async with httpx.AsyncClient(timeout=60) as http:
                    answers.append((await http.post(
                        f"{url_a}/api/conversation/messages", headers=headers,
                        json={"message": "我的订单 A1024 到哪了？"})).json())

            group.start_soon(ask_a)
            with anyio.fail_after(30):
                await held.wait()
            page = await chrome.new_page(viewport={"width": 480, "height": 820},
                                         locale="zh-CN")
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.goto(f"{url_b}/widget#token={mint_customer_token(SECRET, 'u1001')}")
            await page.locator(".bubble.typing", has_text="正在回复中").wait_for(timeout=WAIT)
            box = page.get_by_label("输入消息")
            assert await box.is_disabled()
            # a few state polls later: still waiting, and never a request for A's events
            polls = [u for u in asked if u.endswith("/api/conversation")]
            while len(polls) < 3:
                await anyio.sleep(0.2)
                polls = [u for u in asked if u.endswith("/api/conversation")]
            await shot(page, "5-run-on-another-replica")
            assert not [u for u in asked if "/events" in u], asked
            release.set()
            answer = page.locator(".row.bot .bubble", has_text="SF1402938475612")
            await answer.wait_for(timeout=WAIT)
            await page.locator(".row.user .bubble", has_text="A1024").wait_for(timeout=WAIT)
            assert await box.is_enabled()
            assert problems == []
            assert answers and answers[0]["status"] == "completed"
            assert "SF1402938475612" in answers[0]["output"]
        book_a.close()
        book_b.close()
