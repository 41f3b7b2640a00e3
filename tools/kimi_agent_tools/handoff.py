"""`handoff_to_human`: end the run and pass the conversation to a person.

转人工。The tool calls `RunContext.handoff`, so once every tool call of the step is done the
run stops with ``RunResult.status == "handoff"`` and ``RunResult.handoff`` holding the reason
(one of `HandoffReason`, for the calling service to route on), the summary (for the person
who takes over) and the tool call id. The model gets a short confirmation to pass on.

No deps are needed. Deps may have a ``handoff_queues`` mapping (reason → queue name) to fill
in `Handoff.queue` when the service has several teams; without one the queue is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from kimi_agent import RunContext, tool
from kimi_agent_tools.errors import InvalidInputError

__all__ = ["HANDOFF_REASON_TEXT", "HandoffReason", "handoff_to_human"]

HandoffReason = Literal[
    "complaint",
    "refund_dispute",
    "order_problem",
    "technical_issue",
    "customer_request",
    "other",
]

HANDOFF_REASON_TEXT: dict[str, str] = {
    "complaint": "投诉",
    "refund_dispute": "退款纠纷",
    "order_problem": "订单问题",
    "technical_issue": "技术问题",
    "customer_request": "客户要求人工",
    "other": "其他",
}

_MAX_SUMMARY = 2000


@tool
def handoff_to_human(ctx: RunContext[Any], reason: HandoffReason, summary: str) -> str:
    """转接人工客服，结束本次对话。Hand the conversation over to a human agent.

    Use it when the customer asks for a person, is making a complaint, disputes a refund, or
    the problem is beyond the tools. After calling it, tell the customer a person will take
    over; do not keep solving the problem yourself.

    Args:
        reason: 转人工原因，用于分配客服：complaint 投诉、refund_dispute 退款纠纷、
            order_problem 订单问题、technical_issue 技术问题、customer_request 客户要求人工、
            other 其他 / why, used to route to the right team.
        summary: 给人工客服的简要说明：客户是谁、诉求、已做过什么 / a short brief for the
            person taking over: the customer's issue and what was already done.
    """
    summary = summary.strip()
    if not summary:
        raise InvalidInputError(
            "请提供转人工的简要说明。A summary for the human agent is required."
        )
    if len(summary) > _MAX_SUMMARY:
        summary = summary[:_MAX_SUMMARY] + "…"
    queues = getattr(ctx.deps, "handoff_queues", None)
    queue = queues.get(reason) if isinstance(queues, Mapping) else None
    ctx.handoff(reason, summary=summary, queue=queue)
    label = HANDOFF_REASON_TEXT.get(reason, reason)
    return (
        f"已转接人工客服（原因：{label}）。请告诉客户：已为您转接人工客服，请稍候，"
        "工作人员会尽快与您联系。"
        f"Handed off to a human agent (reason: {reason}). Tell the customer that a person "
        "will take over shortly."
    )
