"""The other process of the session tests: runs agents on a shared SQLite file.

`python -m tests.session_worker COMMAND --db FILE ...` (from the repository root). The
gateway simulator runs in the test process; its URL and key come in `--url` / `--key`. Each
command prints one JSON line with what it did, for the test to check.

It also holds what both sides share: the tools the worker's agent has, and `responder`, the
model the simulator plays. The responder is stateless (it answers from the request alone), so
one simulator serves any number of processes and sessions at once.

- chat: `--runs` runs on each of `--sessions` (concurrently across sessions); prompts carry
  the session id, so a message that lands in the wrong session shows.
- block: a run whose second step calls `slow_lookup`, which writes `--ready` and sleeps: the
  test kills this process with SIGKILL while the step is in flight.
- hammer: appends three-message steps to `--session` as fast as it can (no agent), writing
  `--ready` after the first commits: the test kills it mid-write.
- resume: `agent.resume(...)` with `--approve ID` / `--reject ID=REASON`.

The test side (`started`, `run_worker`, `wait_for_file`) starts workers with their output in
files, bounds every wait, and always kills and reaps them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from kimi_agent import Agent, GatewayClient, RetryPolicy, RunContext, tool
from kimi_agent.sessions._sqlite import SQLiteSession, SQLiteStore
from kimi_agent.testing import GatewaySimulator, Reply, SimRequest
from kimi_agent.wire import AssistantMessage, Message, ToolMessage, UserMessage

INSTRUCTIONS = "你是一家网店的客服助手，回答要简洁、礼貌。"
ORDER_ID = re.compile(r"[A-Z][A-Za-z0-9-]*\d")
SLOW = "慢查"
READY_ENV = "KIMI_SESSION_TEST_READY"


# --------------------------------------------------------------------------- tools


@tool
def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号，例如 "A1024"。
    """
    return {"order_id": order_id, "状态": "运输中", "承运商": "顺丰速运"}


@tool
def slow_lookup(order_id: str) -> str:
    """查询仓库的详细记录（很慢）。

    Args:
        order_id: 订单号。
    """
    ready = os.environ.get(READY_ENV)
    if ready:
        Path(ready).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(3600)
    return f"{order_id} 的仓库记录"


@tool(requires_approval=True)
def refund(ctx: RunContext[Any], order_id: str, amount: float) -> str:
    """为订单退款（需要人工审核）。

    Args:
        order_id: 订单号。
        amount: 退款金额（元）。
    """
    return f"退款成功：订单 {order_id} 退款 {amount:.2f} 元（进程 {os.getpid()}）"


@tool
def handoff_complaint(ctx: RunContext[Any], summary: str) -> str:
    """转接人工客服处理投诉。

    Args:
        summary: 给人工客服的说明。
    """
    ctx.handoff("complaint", summary=summary)
    return "已转接人工客服，请稍候。"


TOOLS = [get_order, slow_lookup, refund, handoff_complaint]


# --------------------------------------------------------------------------- the model


def responder(request: SimRequest) -> Reply:
    """The simulated model: a tool step for orders, refunds, complaints; else an answer.

    After tool results it answers with them quoted (a rejected call is explained); a prompt
    with "慢查" asks for `slow_lookup` after `get_order`.
    """
    results = request.tool_results
    text = request.last_user_text
    if results:
        if SLOW in text and results[-1].name == "get_order":
            order = ORDER_ID.search(text)
            return Reply(reasoning="还要查仓库记录。",
                         tool_calls=[("slow_lookup", {"order_id": order.group() if order
                                                      else "?"})])
        if any("拒绝" in r.content for r in results):
            return Reply(text="很抱歉，您的退款申请未通过人工审核：" +
                         "；".join(r.content for r in results), reasoning="向客户解释拒绝原因。")
        return Reply(text="查询结果：" + "；".join(r.content for r in results),
                     reasoning=f"根据{len(results)}个工具结果回答。")
    order = ORDER_ID.search(text)
    if "投诉" in text:
        return Reply(reasoning="客户要投诉，转人工。",
                     tool_calls=[("handoff_complaint", {"summary": f"客户投诉：{text}"})])
    if "退款" in text and order:
        return Reply(text="我来为您申请退款。", reasoning="退款需要审核。",
                     tool_calls=[("refund", {"order_id": order.group(), "amount": 39.8})])
    if "订单" in text and order:
        return Reply(reasoning=f"查询订单 {order.group()}。",
                     tool_calls=[("get_order", {"order_id": order.group()})])
    return Reply(text=f"收到：{text}", reasoning="直接回答。")


def all_accepted(sim: GatewaySimulator) -> bool:
    """Every request was answered 200, except those an injected fault struck on purpose."""
    return not sim.errors and all(r.ok or r.fault for r in sim.requests)


def message_texts(messages: list[Message]) -> list[str]:
    """Every piece of text in a history (contents, reasoning, call arguments)."""
    texts: list[str] = []
    for m in messages:
        if isinstance(m, UserMessage | ToolMessage) and isinstance(m.content, str):
            texts.append(m.content)
        elif isinstance(m, AssistantMessage):
            texts.extend([m.text, m.reasoning_content or ""])
            texts.extend(c.function.arguments for c in m.tool_calls or ())
    return texts


# --------------------------------------------------------------------------- commands


def agent_for(client: GatewayClient) -> Agent[Any, str]:
    """The agent of these tests: the tools above, no cool-down after a fallback."""
    return Agent(instructions=INSTRUCTIONS, tools=TOOLS, client=client, fallback_cooldown=0)


async def chat(args: argparse.Namespace) -> dict[str, Any]:
    counts: dict[str, int] = {}
    async with SQLiteStore(args.db) as store, \
            GatewayClient(args.url, args.key, retry=RetryPolicy(max_retries=5)) as client:
        agent = agent_for(client)

        async def converse(session_id: str) -> None:
            session = store.session(session_id)
            for i in range(args.runs):
                prompt = f"第{i}问：订单 {session_id}-{i} 到哪了？（会话 {session_id}）"
                result = await agent.run(prompt, session=session)
                assert result.status == "completed", result.status
            counts[session_id] = len(await session.get_items())

        async with anyio.create_task_group() as group:
            for session_id in args.sessions.split(","):
                group.start_soon(converse, session_id)
    return {"pid": os.getpid(), "counts": counts}


async def block(args: argparse.Namespace) -> dict[str, Any]:
    os.environ[READY_ENV] = args.ready
    async with SQLiteSession(args.session, args.db) as session, \
            GatewayClient(args.url, args.key) as client:
        result = await agent_for(client).run(f"{SLOW}订单 {args.order} 的仓库记录", session=session)
    return {"pid": os.getpid(), "status": result.status}  # never reached: killed first


async def hammer(args: argparse.Namespace) -> dict[str, Any]:
    async with SQLiteSession(args.session, args.db, synchronous="NORMAL") as session:
        for step in range(1_000_000):
            await session.add_items([
                AssistantMessage(reasoning_content=f"第{step}步", model="kimi-k2-6",
                                 content=f"步骤 {step} 开始"),
                UserMessage(content=f"步骤 {step} 中间"),
                AssistantMessage(content=f"步骤 {step} 结束"),
            ])
            if step == 20:
                Path(args.ready).write_text(str(os.getpid()), encoding="utf-8")
    return {"pid": os.getpid()}


async def resume(args: argparse.Namespace) -> dict[str, Any]:
    rejected = dict(item.split("=", 1) for item in args.reject)
    async with SQLiteSession(args.session, args.db) as session, \
            GatewayClient(args.url, args.key) as client:
        result = await agent_for(client).resume(session, approved=args.approve, rejected=rejected)
    return {"pid": os.getpid(), "status": result.status, "output": result.output,
            "calls": [[c.call_id, c.name, c.status, c.result] for s in result.steps
                      for c in s.tool_calls]}


COMMANDS = {"chat": chat, "block": block, "hammer": hammer, "resume": resume}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="session_worker")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--session", default="")
    parser.add_argument("--sessions", default="")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ready", default="")
    parser.add_argument("--order", default="A1024")
    parser.add_argument("--approve", action="append", default=[])
    parser.add_argument("--reject", action="append", default=[])
    args = parser.parse_args(argv)
    report = anyio.run(COMMANDS[args.command], args)
    print(json.dumps(report, ensure_ascii=False), flush=True)



# --------------------------------------------------------------------------- the test side

ROOT = Path(__file__).resolve().parents[1]


class Worker:
    """A worker process started by a test, with its output in files (never a full pipe)."""

    def __init__(self, process: anyio.abc.Process, out: Path, err: Path) -> None:
        self.process = process
        self.out = out
        self.err = err

    @property
    def pid(self) -> int:
        return self.process.pid

    def report(self) -> dict[str, Any]:
        lines = self.out.read_text(encoding="utf-8").splitlines()
        assert self.process.returncode == 0 and lines, (
            f"worker failed with {self.process.returncode}:\n"
            f"{self.err.read_text(encoding='utf-8')[-4000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result


@asynccontextmanager
async def started(command: str, db: Path, *args: str, logs: Path) -> AsyncIterator[Worker]:
    """Start `python -m tests.session_worker COMMAND`; it is killed and reaped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{command}-{len(list(logs.iterdir()))}"
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "tests.session_worker", command, "--db", str(db), *args],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        try:
            yield Worker(process, out, err)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()


async def run_worker(command: str, db: Path, *args: str, logs: Path,
                     timeout: float = 300) -> dict[str, Any]:
    """Run a worker to the end (bounded by `timeout`) and return its JSON report."""
    async with started(command, db, *args, logs=logs) as worker:
        with anyio.fail_after(timeout):
            await worker.process.wait()
    return worker.report()


async def wait_for_file(path: Path, worker: Worker, timeout: float = 120) -> None:
    """Wait until `path` exists (polling), failing early if the worker died."""
    with anyio.fail_after(timeout):
        while not path.exists():
            assert worker.process.returncode is None, worker.err.read_text(encoding="utf-8")
            await anyio.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1:])
