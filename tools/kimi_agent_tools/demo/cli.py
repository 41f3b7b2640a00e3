"""`kimi-agent demo`: the shop bot, end to end, in the terminal.

Without `BYTESPIKE_API_KEY` the model is the gateway simulator (a real HTTP server on
loopback) answering with `scenario.shop_responder`; with a key, the same agent talks to the
real gateway. Everything else is the real thing either way: the agent loop, the tools, the
SQLite files. The conversation is kept in a SQLite session, so a second `kimi-agent demo`
continues it (`--fresh` starts over, `--db` picks the file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from kimi_agent import (
    Agent,
    GatewayClient,
    PendingApproval,
    RunResult,
    RunUsage,
    SQLiteSession,
)
from kimi_agent.cli.terminal import (
    EventPrinter,
    Style,
    pending_lines,
    usage_summary,
    user_data_dir,
)
from kimi_agent.tracing import TraceSummary
from kimi_agent.wire import UserMessage
from kimi_agent_tools.demo.bot import DEMO_CUSTOMER, build_agent, make_deps
from kimi_agent_tools.demo.scenario import FIRST_VISIT, RETURNING_VISIT

__all__ = ["default_db", "run_demo"]

CUSTOMER = "👤 顾客："
BOT = "🤖 小象："


def default_db() -> Path:
    """The demo's file in the per-user data directory (e.g. ~/.local/share/kimi-agent)."""
    return user_data_dir() / "demo.db"


@dataclass
class Demo:
    """One run of the demo: where its data lives, how it prints, what it used."""

    db: Path
    session_id: str
    live: bool
    out: Any = field(default_factory=lambda: sys.stdout)
    usage: RunUsage = field(default_factory=RunUsage)
    models: list[str] = field(default_factory=list)
    trace: TraceSummary | None = None

    def __post_init__(self) -> None:
        self.style = Style.for_stream(self.out)
        self.printer = EventPrinter(self.out, speaker=BOT, style=self.style)

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def account(self, result: RunResult[Any]) -> None:
        self.usage += result.usage
        self.models.extend(step.model for step in result.steps)
        if self.trace is not None:
            self.say(self.style.dim(self.trace.render()))


def run_demo(args: argparse.Namespace) -> int:
    """The body of `kimi-agent demo`; returns the exit status."""
    db = Path(args.db).expanduser() if getattr(args, "db", None) else default_db()
    if getattr(args, "fresh", False):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    demo = Demo(db=db, session_id=getattr(args, "session", None) or "demo-customer",
                live=bool(os.environ.get("BYTESPIKE_API_KEY")),
                trace=TraceSummary() if getattr(args, "trace", False) else None)
    try:
        anyio.run(_main, demo)
    except KeyboardInterrupt:
        demo.printer.close()
        demo.say(demo.style.yellow("已中断。已完成的对话都保存在会话里，再次运行 kimi-agent demo "
                                   "会接着聊。Interrupted; the session is saved."))
        return 130
    return 0


@asynccontextmanager
async def _gateway(demo: Demo) -> AsyncIterator[GatewayClient]:
    """The real gateway when a key is set, else the simulator on a loopback port."""
    if demo.live:
        async with GatewayClient() as client:
            demo.say(demo.style.green(f"在线演示：使用网关 {client.base_url} (BYTESPIKE_API_KEY is "
                                      "set — running on the real gateway)"))
            yield client
        return
    try:
        from kimi_agent.testing import GatewaySimulator, Latency
        from kimi_agent_tools.demo.scenario import shop_responder
    except ImportError:
        raise ValueError("the offline demo needs the simulator: pip install -e '.[sim]' "
                         "(or set BYTESPIKE_API_KEY to use the real gateway)") from None

    demo.say(demo.style.yellow("离线演示：使用内置网关模拟器 (no API key set — running on the "
                               "built-in gateway simulator)"))
    sim = GatewaySimulator(responder=shop_responder,
                           latency=Latency(first_token=0.12, tokens_per_second=400))
    async with sim.serve() as base_url, GatewayClient(base_url, sim.api_key) as client:
        demo.say(demo.style.dim(f"模拟器地址 simulator: {base_url}（脚本化的模型，真实的 HTTP、"
                                "工具和 SQLite）"))
        yield client


async def _main(demo: Demo) -> None:
    style = demo.style
    demo.say(style.bold("══ kimi-agent 演示：「小象优选」网店智能客服 ══"))
    async with _gateway(demo) as client:
        deps, created = make_deps(demo.db, customer_id=DEMO_CUSTOMER)
        agent = build_agent(client, hooks=[demo.trace] if demo.trace is not None else ())
        demo.say(style.dim(f"数据文件 data: {demo.db}" + ("（已创建演示订单）" if created else "")))
        with SQLiteSession(demo.session_id, demo.db) as session:
            history = await session.get_items()
            script: Sequence[str]
            if history:
                demo.say(style.cyan(f"继续之前的会话（{len(history)} 条消息）"
                                    f" — resuming session {demo.session_id!r}"))
                script = RETURNING_VISIT
                await _leftover_approvals(demo, agent, session, deps)
            else:
                demo.say(style.cyan(f"新会话 new session {demo.session_id!r}"
                                    f"（顾客 customer {DEMO_CUSTOMER}）"))
                script = FIRST_VISIT
            for message in script:
                await _turn(demo, agent, session, deps, message)
    demo.say()
    demo.say(usage_summary(demo.usage, demo.models, style))
    demo.say(style.dim("再次运行 kimi-agent demo 会继续这个会话；加 --fresh 从头开始。"
                       "Run it again to continue the session; --fresh starts over."))


async def _turn(demo: Demo, agent: Agent[str], session: SQLiteSession, deps: Any,
                message: str) -> None:
    """One customer message: stream the run, then settle approvals and hand-offs."""
    demo.say()
    demo.say(demo.style.bold(CUSTOMER) + message)
    async with agent.stream(message, deps=deps, session=session) as run:
        async for event in run:
            demo.printer.handle(event)
    demo.printer.close()
    result = run.result
    sent = next((m.content for m in result.new_messages if isinstance(m, UserMessage)), message)
    if sent != message:
        demo.say(demo.style.dim("  🔒 个人信息已脱敏后才交给模型和会话 (PII masked before the "
                                f"model and the session saw it): {sent}"))
    demo.account(result)
    await _settle(demo, agent, session, deps, result)


async def _settle(demo: Demo, agent: Agent[str], session: SQLiteSession, deps: Any,
                  result: RunResult[str]) -> None:
    """Approve what waits for approval (again if the continued run asks again), then show a
    hand-off the way a calling service would see it."""
    while result.status == "pending_approval":
        demo.say(demo.style.yellow(f"  ⏳ 等待人工审批… status={result.status}"))
        result = await _approve(demo, agent, session, deps, result.pending_approvals)
    if result.status == "handoff" and result.handoff is not None:
        handoff = result.handoff
        demo.say(demo.style.yellow(f"  ⇢ 已转人工 status={result.status} reason={handoff.reason}"
                                   f" queue={handoff.queue or '-'}"))
        demo.say(demo.style.dim(f"    摘要 summary: {handoff.summary}"))
        demo.say(demo.style.dim("    （调用方服务据此把会话路由给对应的人工坐席 — what a calling "
                                "service routes on）"))


async def _approve(demo: Demo, agent: Agent[str], session: SQLiteSession, deps: Any,
                   pending: Sequence[PendingApproval]) -> RunResult[str]:
    """Play the human reviewer: show the calls waiting, approve them, continue the run."""
    style = demo.style
    for line in pending_lines(pending, style):
        demo.say(line)
    who = "真实网关模式下同样由演示脚本" if demo.live else "演示脚本"
    demo.say(style.green(f"  ✔ 已批准（{who}以人工客服身份批准 — approved by the demo, acting "
                         "as the human agent）"))
    async with agent.resume_stream(session, approved=[p.call_id for p in pending],
                                   deps=deps) as run:
        async for event in run:
            demo.printer.handle(event)
    demo.printer.close()
    resumed = run.result
    demo.account(resumed)
    return resumed


async def _leftover_approvals(demo: Demo, agent: Agent[str], session: SQLiteSession,
                              deps: Any) -> None:
    """A previous demo stopped while a refund waited for approval: decide it first (the
    session cannot take a new message before)."""
    pending = await agent.pending_approvals(session)
    if pending:
        demo.say(demo.style.yellow("上次中断时有操作在等待审批，先处理它们。"
                                   "A call was left waiting for approval: settling it first."))
        await _settle(demo, agent, session, deps,
                      await _approve(demo, agent, session, deps, pending))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kimi_agent_tools.demo` — the same as `kimi-agent demo`."""
    from kimi_agent.cli import main as cli_main

    return cli_main(["demo", *(argv if argv is not None else sys.argv[1:])])
