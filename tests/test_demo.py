"""`kimi-agent demo`, run as a user runs it: a subprocess, twice on one data file.

The output is checked for what the demo promises — the offline notice, three tools running
concurrently, a refund that waits for approval and is then done, a complaint handed to a
human, the second invocation continuing the session, the usage summary — and the data files
for what really happened. No timing is asserted: concurrency is read from the order of the
start and finish lines (each demo tool waits ~0.1 s, so all three start before any ends).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.clikit import LiveCli, run_cli

pytestmark = pytest.mark.timeout(60)


class DemoRuns:
    def __init__(self, home: Path, db: Path, first: str, second: str) -> None:
        self.home, self.db, self.first, self.second = home, db, first, second


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    home = tmp_path_factory.mktemp("home")
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    first = run_cli(home, "demo", "--db", str(db))
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_cli(home, "demo", "--db", str(db))
    assert second.returncode == 0, second.stdout + second.stderr
    return DemoRuns(home, db, first.stdout, second.stdout)


def lines(text: str) -> list[str]:
    return text.splitlines()


def index(all_lines: list[str], needle: str, start: int = 0) -> int:
    for i in range(start, len(all_lines)):
        if needle in all_lines[i]:
            return i
    raise AssertionError(f"{needle!r} not found after line {start}:\n" + "\n".join(all_lines))


def test_demo_says_it_runs_offline_on_the_simulator(demo: DemoRuns) -> None:
    for output in (demo.first, demo.second):
        assert "离线演示：使用内置网关模拟器" in output
        assert "no API key set — running on the built-in gateway simulator" in output


def test_three_tools_start_before_any_finishes(demo: DemoRuns) -> None:
    out = lines(demo.first)
    starts = [index(out, '🔧 get_order(order_id="A1024")'),
              index(out, '🔧 get_shipping_status(order_id="A1024")'),
              index(out, "🔧 faq_search(query=")]
    first_finish = index(out, "✓ ", min(starts))
    assert max(starts) < first_finish
    finished = {name for name in ("get_order", "get_shipping_status", "faq_search")
                if any(f"✓ {name}  " in line and "ms" in line
                       for line in out[first_finish:first_finish + 3])}
    assert finished == {"get_order", "get_shipping_status", "faq_search"}
    assert "⇉ 3 个工具并发执行" in demo.first


def test_the_answer_is_built_from_the_tool_results(demo: DemoRuns) -> None:
    assert "SF1402938475612" in demo.first           # the tracking number in the order DB
    assert "快件已到达上海转运中心" in demo.first         # its latest shipping event
    assert "七天无理由退货" in demo.first                 # the FAQ passage found


def test_refund_waits_for_approval_then_is_done(demo: DemoRuns) -> None:
    out = lines(demo.first)
    pending = index(out, "⏸ request_refund")
    waiting = index(out, "等待人工审批", pending)
    approved = index(out, "已批准", waiting)
    ran = index(out, "✓ request_refund", approved)
    confirmed = index(out, "退款单号 RF", ran)
    assert "status=pending_approval" in out[waiting]
    assert "¥89.00" in out[confirmed]
    with sqlite3.connect(demo.db) as conn:
        refunds = conn.execute(
            "SELECT amount_fen FROM refunds WHERE order_id = 'A1025'").fetchall()
    assert refunds == [(8900,)]


def test_complaint_is_handed_off_with_a_reason(demo: DemoRuns) -> None:
    out = lines(demo.first)
    call = index(out, "🔧 handoff_to_human(reason=\"complaint\"")
    status = index(out, "status=handoff", call)
    assert "reason=complaint" in out[status]
    assert "queue=投诉专席" in out[status]
    assert "摘要 summary:" in out[status + 1] and "A1025" in out[status + 1]


def test_refunds_go_to_the_refunds_agent_and_the_phone_number_is_masked(
        demo: DemoRuns) -> None:
    out = lines(demo.first)
    handed = index(out, "⇄ 转接 hand-off: shop → refunds")
    assert index(out, "🔧 request_refund", handed) > handed
    masked = index(out, "🔒 个人信息已脱敏")
    assert "138****5678" in out[masked] and "13812345678" not in "".join(out[masked:])
    back = lines(demo.second)
    assert index(back, "⇄ 转接 hand-off: refunds → shop") < index(back, "欢迎回来")


def test_second_invocation_continues_the_session(demo: DemoRuns) -> None:
    assert "新会话" in demo.first
    assert "继续之前的会话（17 条消息）" in demo.second
    assert "欢迎回来" in demo.second
    # the greeting remembers the refund made in the first process
    refund_id = next(line for line in lines(demo.first) if "退款单号 RF" in line)
    rid = refund_id[refund_id.index("RF"):refund_id.index("RF") + 8]
    assert rid in demo.second
    assert "⇉ 3 个工具并发执行" in demo.second


def test_usage_summary_at_the_end(demo: DemoRuns) -> None:
    # the first visit: 2 + transfer + 2 for the refund (before and after the approval) + 1
    # for the complaint; the second: the refunds desk hands back, then 2 steps
    for output, requests in ((demo.first, 7), (demo.second, 4)):
        tail = output[output.index("── 用量 usage ──"):]
        assert f"请求 requests：{requests}" in tail
        assert "输入 prompt tokens：" in tail and "缓存命中 cached" in tail
        assert "输出 completion tokens：" in tail
        assert "模型 models：kimi-k2-6" in tail


def test_fresh_starts_over(demo: DemoRuns, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    assert run_cli(demo.home, "demo", "--db", str(db)).returncode == 0
    again = run_cli(demo.home, "demo", "--db", str(db), "--fresh")
    assert again.returncode == 0, again.stderr
    assert "新会话" in again.stdout and "继续之前的会话" not in again.stdout
    assert "已创建演示订单" in again.stdout


def test_default_data_dir_is_per_user(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "demo")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo.db").exists()          # KIMI_AGENT_HOME points here


def test_ctrl_c_keeps_the_session(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    with LiveCli(tmp_path, "demo", "--db", str(db)) as demo:
        demo.wait_for("⇉ 3 个工具并发执行")
        demo.interrupt()
        code = demo.finish()
        output = demo.output
    assert code in (0, 130), output
    if code == 130:
        assert "已中断" in output
    assert "Traceback" not in output
    again = run_cli(tmp_path, "demo", "--db", str(db))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "继续之前的会话" in again.stdout


def test_with_a_key_the_same_bot_runs_on_the_configured_gateway(tmp_path: Path) -> None:
    """BYTESPIKE_API_KEY set: the demo uses the gateway from the environment — here a
    simulator standing in for it — and still says that approvals are given by the demo."""
    from kimi_agent_tools.demo.scenario import shop_responder

    from kimi_agent.testing import GatewaySimulator

    sim = GatewaySimulator(responder=shop_responder, api_key="test-key")
    with sim.serve_in_thread() as url:
        done = run_cli(tmp_path, "demo", "--db", str(tmp_path / "d.db"),
                       env={"BYTESPIKE_API_KEY": "test-key", "BYTESPIKE_BASE_URL": url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"在线演示：使用网关 {url}" in done.stdout
    assert "离线演示" not in done.stdout
    assert "已批准（真实网关模式下同样由演示脚本以人工客服身份批准" in done.stdout
    assert "status=handoff" in done.stdout
    assert len(sim.requests) == 7 and all(r.ok for r in sim.requests)


def test_a_refund_left_waiting_is_decided_first(tmp_path: Path) -> None:
    """A demo stopped while the refund waited for approval: the next run settles it before
    the customer's new message (the run could not continue otherwise)."""
    import anyio
    from kimi_agent_tools.demo import build_agent, make_deps
    from kimi_agent_tools.demo.scenario import FIRST_VISIT, shop_responder

    from kimi_agent import GatewayClient, SQLiteSession
    from kimi_agent.testing import GatewaySimulator

    db = tmp_path / "demo.db"

    async def leave_a_refund_waiting() -> str:
        deps, _ = make_deps(db, latency=False)
        sim = GatewaySimulator(responder=shop_responder)
        async with sim.serve() as url, GatewayClient(url, sim.api_key) as client:
            with SQLiteSession("demo-customer", db) as session:
                result = await build_agent(client).run(FIRST_VISIT[1], deps=deps,
                                                       session=session)
        return result.status

    assert anyio.run(leave_a_refund_waiting) == "pending_approval"
    done = run_cli(tmp_path, "demo", "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr
    out = lines(done.stdout)
    settled = index(out, "上次中断时有操作在等待审批")
    index(out, "✓ request_refund", settled)
    assert settled < index(out, "👤 顾客：你好，我又来了")
