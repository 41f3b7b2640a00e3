"""A multi-step workflow: after-sales messages classified, acted on and answered, durably.

售后工单处理流程。Each message of an inbox is one durable workflow (`kimi_agent.durable`, on
DBOS) of three steps, each an agent run:

1. 分类 classify — structured output (`Triage`, a pydantic model): category, order, urgency;
2. 处理 act — only when the message names an order (a branch): an agent with the order tools
   looks the order up and opens a ticket (retried by its policy if the run fails); the
   ticket id is read from the tool call's result, not from the model's prose;
3. 回复 reply — a writer agent drafts the answer to the customer.

Every model call and tool execution is a checkpointed DBOS step. A workflow that stops
half-way — a crash, a deploy, `kill -9` — is recovered when the program starts again: the
finished calls are read back from their checkpoints (not paid for again, no second ticket),
and the workflow goes on from where it stopped. Offline, the model is the gateway
simulator playing `script.yaml`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kimi_agent_tools import KnowledgeBase, OrderStore, ShopDeps, get_order, open_ticket
from pydantic import BaseModel, Field

from kimi_agent import Agent
from kimi_agent.durable import Flow, RetryPolicy, Workflow

__all__ = [
    "INBOX",
    "SCRIPT",
    "InboxMessage",
    "Triage",
    "WorkflowReport",
    "inbox_workflow",
    "run_workflow",
]

SCRIPT = Path(__file__).resolve().parent / "script.yaml"


class Triage(BaseModel):
    """The classification of one customer message (step 1's structured output)."""

    category: Literal["shipping", "product_quality", "return_refund", "invoice", "account",
                      "other"] = Field(description="问题类别 / the kind of problem")
    order_id: str | None = Field(default=None, description="涉及的订单号 / the order, if any")
    urgent: bool = Field(default=False, description="是否需要优先处理 / needs priority")
    summary: str = Field(description="一句话概括诉求 / the request in one sentence")


@dataclass(frozen=True)
class InboxMessage:
    id: str
    customer_id: str
    text: str


INBOX = (
    InboxMessage("M1", "u1002", "订单 A1026 付款三天了还没发货，能不能快点？"),
    InboxMessage("M2", "u1002", "A1029 的机械键盘有个键失灵了，想换一个。"),
)

TRIAGE: Agent[Any, Triage] = Agent(
    instructions="你是网店售后分拣员。阅读顾客留言，判断问题类别、订单号和紧急程度。",
    output_type=Triage, name="triage")
ACT: Agent[Any, str] = Agent(
    instructions="你是网店售后专员。先用 get_order 核实订单，再用 open_ticket 创建工单，"
                 "最后用一句话说明做了什么。", tools=[get_order, open_ticket], name="act")
WRITER: Agent[Any, str] = Agent(
    instructions="你是网店客服，请根据处理结果给顾客写一段简短、真诚的中文回复。",
    name="writer")

# The gateway client of each workflow execution comes from the environment
# (BYTESPIKE_API_KEY, BYTESPIKE_BASE_URL): a recovered workflow makes its own.
inbox_workflow = Workflow("after-sales-inbox")
_log: list[Callable[[str], None]] = [print]


def log(line: str) -> None:
    _log[0](line)


@inbox_workflow.main
async def handle_message(flow: Flow, message: dict[str, str], data_dir: str) -> dict[str, Any]:
    """The three steps for one message; returns their outputs."""
    text = message["text"]
    triage = await flow.agent("classify", TRIAGE, f"【分类】{text}")
    log(f"  ✓ {message['id']} triage: {_preview(triage.model_dump())}")
    action: dict[str, Any] = {"ticket_id": None, "note": "留言未涉及订单，无需处理"}
    if triage.order_id is not None:                           # a branch: no order, no ticket
        store = OrderStore(Path(data_dir) / "shop.db")
        deps = ShopDeps(store, KnowledgeBase([]), customer_id=message["customer_id"])
        acted = await flow.agent_result(
            "act", ACT, f"【处理】订单 {triage.order_id}，类别 {triage.category}："
                        f"{triage.summary}。顾客原话：{text}",
            deps=deps, retry=RetryPolicy(attempts=2, backoff=1.0))
        action = {"ticket_id": _ticket_id(acted.steps), "note": acted.output}
        log(f"  ✓ {message['id']} action: {_preview(action)}")
    reply = await flow.agent(
        "reply", WRITER, f"【回复】订单 {triage.order_id or '无'}（{triage.summary}）。"
                         f"处理结果：{action['note']}（工单 {action['ticket_id']}）。"
                         f"顾客原话：{text}")
    log(f"  ✓ {message['id']} reply: {_preview(reply)}")
    return {"triage": triage.model_dump(), "action": action, "reply": reply}


@dataclass
class WorkflowReport:
    """What the workflows ended with: per message id, the outputs of its three steps."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False


async def run_workflow(data_dir: str | Path, inbox: Sequence[InboxMessage] = INBOX, *,
                       log: Callable[[str], None] = print) -> WorkflowReport:
    """Process `inbox`, one durable workflow per message (id `inbox-<message id>`), in
    order. Call it after `kimi_agent.durable.launch`; a message whose workflow exists
    already (finished, or recovered after a crash) is not started again — its result is
    awaited."""
    data = Path(data_dir)
    OrderStore(data / "shop.db").seed_demo_data()
    _log[0] = log
    report = WorkflowReport()
    for message in inbox:
        log(f"📨 {message.id} {message.text}")
        workflow_id = await inbox_workflow.start(
            {"id": message.id, "customer_id": message.customer_id, "text": message.text},
            str(data), workflow_id=f"inbox-{message.id}")
        report.results[message.id] = await inbox_workflow.result(workflow_id)
    report.complete = True
    return report


def _ticket_id(steps: Sequence[Any]) -> str | None:
    """The id of the ticket the act step opened, from the tool result itself."""
    for step in steps:
        for record in step.tool_calls:
            if record.name == "open_ticket" and record.status == "ok":
                value = json.loads(record.result).get("ticket_id")
                return str(value) if value else None
    return None


def _preview(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
