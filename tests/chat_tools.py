"""Tools for the `kimi-agent chat` tests: an approval tool whose argument is a pydantic model
(its arguments must be shown and stored as JSON, not as the model object)."""

from __future__ import annotations

from pydantic import BaseModel

from kimi_agent import tool


class TicketIn(BaseModel):
    """工单内容。"""

    title: str
    detail: str


@tool(requires_approval=True)
def open_case(ticket: TicketIn) -> str:
    """创建投诉工单（需要审批）。

    Args:
        ticket: 工单的标题和详情。
    """
    return f"工单已创建：{ticket.title}"
