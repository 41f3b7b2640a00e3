"""What the matrix, the soak and the kill loop share: clients with fast retries and short
time-outs, the shop's tools and the model the simulator plays, and the session verdict."""

from __future__ import annotations

import inspect
import re
from typing import Any

import anyio

from kimi_agent import Agent, GatewayClient, RetryPolicy, tool
from kimi_agent.sessions import Session
from kimi_agent.testing import Reply, SimRequest

from ._checks import history_problems

__all__ = ["fast_retry", "get_order", "make_client", "session_verdict", "shop"]

ORDER = re.compile(r"[A-Z]\d{3,}")


async def _no_wait(_: float) -> None:
    await anyio.sleep(0)


def fast_retry(max_retries: int = 2) -> RetryPolicy:
    """Retries as the default policy makes them, without the waits."""
    return RetryPolicy(max_retries=max_retries, base_delay=0.0, max_delay=0.0, sleep=_no_wait)


def make_client(base_url: str, api_key: str, *, timeout: float = 10.0,
                retry: RetryPolicy | None = None) -> GatewayClient:
    """A client whose every time-out phase is `timeout` seconds.

    The per-phase time-out arguments (`headers_timeout`, `idle_timeout`, ...) replace the
    single `timeout` in the gateway client being reworked on another branch; this takes
    whichever the installed client has.
    """
    params = inspect.signature(GatewayClient.__init__).parameters
    options: dict[str, Any] = {"retry": retry or fast_retry()}
    if "idle_timeout" in params:
        options.update(connect_timeout=timeout, headers_timeout=timeout,
                       idle_timeout=timeout, reply_timeout=timeout)
    else:
        options["timeout"] = timeout
    return GatewayClient(base_url, api_key, **options)


@tool
def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号，例如 "A1024"。
    """
    return {"订单号": order_id, "状态": "运输中", "承运商": "顺丰速运"}


def shop(request: SimRequest) -> Reply:
    """The model of the shop: looks orders up, then answers from the results (stateless)."""
    if request.tool_results:
        said = "；".join(r.content[:80] for r in request.tool_results)
        return Reply(text=f"查到了：{said}", reasoning="根据工具结果回答。")
    orders = ORDER.findall(request.last_user_text)
    if orders and "get_order" in request.tool_names:
        return Reply(reasoning="先查订单。",
                     tool_calls=[("get_order", {"order_id": o}) for o in orders[:3]])
    return Reply(text=f"收到：{request.last_user_text}", reasoning="直接回答。")


async def session_verdict(agent: Agent[Any], session: Session, prompts: list[str]
                          ) -> list[str]:
    """The problems of `session`'s stored history (see `history_problems`); calls the agent
    reports as waiting for approval count as answered."""
    pending = {p.call_id for p in await agent.pending_approvals(session)}
    return history_problems(await session.get_items(), prompts=prompts, pending=pending)
