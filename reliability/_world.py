"""The world the soak and the kill loop run in: the shop's tools (good ones and faulty ones),
the model the simulator plays, the prompts, process figures and the journal of runs.

The model is stateless (it answers from the request alone), so one simulator serves any
number of processes. A prompt says what the model does with it, by a marker:
`[工具:NAME]` makes the first step call NAME beside a `get_order` sibling, `[重复]` gives
duplicate tool-call ids, `[两步]` takes two tool steps; anything else is a plain answer or,
for a prompt naming an order, one `get_order` step. Each prompt carries its session id, so a
message that lands in the wrong session shows.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any, TextIO

import anyio

from kimi_agent import tool
from kimi_agent.testing import Reply, SimRequest, ToolCallSpec

from ._kit import get_order

__all__ = ["FAULTY_TOOLS", "TOOLS", "Journal", "proc_figures", "prompt_for", "responder"]

MARK = re.compile(r"\[工具:([a-z_]+)\]")
SESSION = re.compile(r"〔(.+?)〕")


@tool
def raises(order_id: str) -> str:
    """总是失败的查询（数据库不可用）。

    Args:
        order_id: 订单号。
    """
    raise ValueError(f"订单 {order_id} 查询失败：数据库不可用")


@tool
async def hangs(order_id: str) -> str:
    """永远不返回的查询（异步，靠超时结束）。

    Args:
        order_id: 订单号。
    """
    await anyio.sleep(3600)
    return "never"


@tool
def blocks(order_id: str) -> str:
    """阻塞线程超过超时的同步查询。

    Args:
        order_id: 订单号。
    """
    time.sleep(0.4)
    return f"{order_id} 很晚才查到"


@tool
def big(order_id: str) -> str:
    """返回很长的物流记录（约 20 KB）。

    Args:
        order_id: 订单号。
    """
    return f"{order_id} 物流：" + "已到达转运中心；" * 2000


@tool
def unserialisable(order_id: str) -> Any:
    """返回无法 JSON 序列化的对象。

    Args:
        order_id: 订单号。
    """
    return {"订单": order_id, "集合": {1, 2, 3}, "对象": object()}


@tool
async def slow_lookup(order_id: str) -> str:
    """慢一点的查询（步骤进行中时被杀的机会更大）。

    Args:
        order_id: 订单号。
    """
    await anyio.sleep(0.05)
    return f"{order_id} 的仓库记录：已出库"


FAULTY_TOOLS = {t.name: t for t in (raises, hangs, blocks, big, unserialisable)}
TOOLS = [get_order, slow_lookup, *FAULTY_TOOLS.values()]


def responder(request: SimRequest) -> Reply:
    """The simulated model (see the module docstring)."""
    text = request.last_user_text
    results = request.tool_results
    if results:
        if "[两步]" in text and _steps_this_turn(request) < 2:
            return Reply(reasoning="还要查仓库。", tool_calls=[("slow_lookup", {"order_id": "W1"})])
        said = "；".join(r.content[:60] for r in results)
        return Reply(text=f"查询结果：{said}", reasoning=f"根据{len(results)}个结果回答。")
    marked = MARK.search(text)
    if marked is not None:
        return Reply(reasoning="调用工具。", tool_calls=[
            ("get_order", {"order_id": "A1"}), (marked.group(1), {"order_id": "A2"})])
    if "[重复]" in text:
        return Reply(reasoning="查两个。", tool_calls=[
            ToolCallSpec("get_order", {"order_id": "A1"}, id="get_order:0"),
            ToolCallSpec("get_order", {"order_id": "A2"}, id="get_order:0")])
    if "[两步]" in text:
        return Reply(reasoning="先查订单。", tool_calls=[("get_order", {"order_id": "B7"}),
                                                      ("slow_lookup", {"order_id": "B7"})])
    if "订单" in text:
        return Reply(reasoning="查订单。", tool_calls=[("get_order", {"order_id": "C3"})])
    return Reply(text=f"收到：{text}", reasoning="直接回答。")


def _steps_this_turn(request: SimRequest) -> int:
    """Assistant messages after the last user message (the tool steps of this turn)."""
    count = 0
    for message in request.messages:
        if message.get("role") == "user":
            count = 0
        elif message.get("role") == "assistant":
            count += 1
    return count


def prompt_for(session_id: str, n: int, rng: random.Random, tool_rate: float,
               tool_faults: list[str], writer: str = "") -> str:
    """The n-th prompt of `writer` in a session: a plain question, an order, two steps, or a
    fault (unique per writer and session, so each can be found again)."""
    head = f"〔{session_id}〕{writer}第{n}问："
    roll = rng.random()
    if tool_faults and roll < tool_rate:
        return head + f"查订单 [工具:{rng.choice(tool_faults)}]"
    if roll < tool_rate + 0.02:
        return head + "查两个订单 [重复]"
    roll = rng.random()
    if roll < 0.3:
        return head + "你们几点下班？"
    if roll < 0.6:
        return head + "订单到哪了？"
    return head + "查订单和仓库 [两步]"


def session_of(prompt: str) -> str | None:
    found = SESSION.search(prompt)
    return found.group(1) if found else None


def proc_figures() -> dict[str, float]:
    """This process's resident memory (MB) and open file descriptors."""
    rss = 0.0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return {"rss_mb": round(rss, 1), "open_fds": len(os.listdir("/proc/self/fd"))}


class Journal:
    """One JSON line per event, written unbuffered so a `kill -9` keeps every line written."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def write(self, **record: Any) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._file.close()


def read_journals(folder: Path) -> list[dict[str, Any]]:
    """Every record of every journal in `folder` (a line cut by a kill is skipped)."""
    records = []
    for path in sorted(folder.glob("journal-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records
