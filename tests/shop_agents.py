"""A triage agent, a refunds agent and a billing agent for the hand-off tests, and the model
the simulator plays for them. Also run as a process: `python -m tests.shop_agents resume
--db FILE --session ID --url URL --key KEY --approve CALL_ID` resumes an approval in another
process, printing one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from kimi_agent import Agent, GatewayClient, RunContext, SQLiteSession, tool
from kimi_agent.testing import Reply, SimRequest

REFUNDS_DONE: list[str] = []


@tool(requires_approval=True)
def request_refund(ctx: RunContext[Any], order_id: str, amount: float) -> str:
    """提交退款（需要人工审批）。

    Args:
        order_id: 订单号。
        amount: 金额（元）。
    """
    REFUNDS_DONE.append(order_id)
    return json.dumps({"退款单号": "RF000001", "订单": order_id, "金额": amount},
                      ensure_ascii=False)


@tool
def get_invoice(order_id: str) -> str:
    """查询发票。

    Args:
        order_id: 订单号。
    """
    return f"{order_id} 的发票已开具"


def build(client: GatewayClient) -> tuple[Agent[Any, str], Agent[Any, str], Agent[Any, str]]:
    refunds = Agent(name="refunds", description="处理退款申请。Handles refunds.",
                    instructions="你是退款专员。", tools=[request_refund], client=client)
    billing = Agent(name="billing", description="处理发票与账单问题。Handles invoices.",
                    instructions="你是账单专员。", tools=[get_invoice], client=client)
    triage = Agent(name="triage", instructions="你是分诊客服，把问题转给合适的同事。",
                   handoffs=[billing, refunds], client=client)
    refunds.add_handoff(triage)
    return triage, billing, refunds


def system_text(request: SimRequest) -> str:
    first = request.messages[0] if request.messages else {}
    return str(first.get("content", "")) if first.get("role") == "system" else ""


def model(request: SimRequest) -> Reply:
    """Plays each agent from its system prompt and the conversation."""
    system = system_text(request)
    last = request.last_user_text
    done = [r.content for r in request.tool_results]
    if "分诊" in system:
        if request.tool_results and request.tool_results[-1].tool_call_id:
            return Reply(text="已为您转接。")
        target = "transfer_to_refunds" if "退款" in last else "transfer_to_billing"
        return Reply(reasoning="转给同事", tool_calls=[(target, {"reason": last[:10]})])
    if "退款专员" in system:
        if any("RF000001" in text for text in done):
            return Reply(text="退款已提交，单号 RF000001。")
        if any("审核拒绝" in text for text in done):
            return Reply(text="退款未获批准。")
        if "退款" in last:
            return Reply(reasoning="需要审批", tool_calls=[
                ("request_refund", {"order_id": "A1025", "amount": 89.0})])
        return Reply(text=f"退款专员收到：{last}")
    if "账单专员" in system:
        if done:
            return Reply(text=done[-1])
        return Reply(reasoning="查发票", tool_calls=[("get_invoice", {"order_id": "A1024"})])
    return Reply(text=f"收到：{last}")


async def _resume(args: argparse.Namespace) -> dict[str, Any]:
    async with GatewayClient(args.url, args.key) as client, \
            SQLiteSession(args.session, args.db) as session:
        triage, _, _ = build(client)
        result = await triage.resume(session, approved=[args.approve])
        return {"output": result.output, "status": result.status, "refunds": REFUNDS_DONE}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["resume"])
    for name in ("--db", "--session", "--url", "--key", "--approve"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    print(json.dumps(anyio.run(_resume, args), ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
