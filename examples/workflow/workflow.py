"""A multi-step workflow: after-sales messages classified, acted on and answered.

售后工单处理流程。Each message of an inbox goes through three steps, each one agent run:

1. 分类 classify — structured output (`Triage`, a pydantic model): category, order, urgency;
2. 处理 act — an agent with the order tools looks the order up and opens a ticket; the ticket
   id is read from the tool call's result, not from the model's prose;
3. 回复 reply — a writer agent drafts the answer to the customer.

Every finished step is written to a checkpoint file at once (atomically), so a workflow that
stops half-way — a crash, a deploy, Ctrl-C — resumes at the first unfinished step and never
redoes (or re-bills) a finished one. That is the pattern docs/guides/durable.md describes for long
workflows. A step that stops half-way runs again from its start, so a tool with side effects
should be idempotent in a real system (e.g. key the ticket by message id). Offline, the model
is the gateway simulator playing `script.yaml`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kimi_agent_tools import KnowledgeBase, OrderStore, ShopDeps, get_order, open_ticket
from pydantic import BaseModel, Field

from kimi_agent import Agent, GatewayClient, RunResult, RunUsage

__all__ = [
    "INBOX",
    "SCRIPT",
    "Checkpoints",
    "InboxMessage",
    "Triage",
    "WorkflowReport",
    "run_workflow",
]

SCRIPT = Path(__file__).resolve().parent / "script.yaml"
STEPS = ("triage", "action", "reply")


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


class Checkpoints:
    """Finished steps, kept in a JSON file: `{message id: {step: output}}`.

    Each `save` writes a temporary file and renames it over the old one, so a crash leaves
    either the previous checkpoint or the new one, never half a file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {})

    def get(self, message_id: str, step: str) -> Any:
        return self.data.get(message_id, {}).get(step)

    def save(self, message_id: str, step: str, value: Any) -> None:
        self.data.setdefault(message_id, {})[step] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass
class WorkflowReport:
    """What a run of the workflow did: per message, the three outputs; and the usage."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    """The steps this run executed, as "M1/triage" (checkpointed ones are skipped)."""
    usage: RunUsage = field(default_factory=RunUsage)
    models: list[str] = field(default_factory=list)
    complete: bool = False

    def add(self, result: RunResult[Any]) -> None:
        self.usage += result.usage
        self.models.extend(step.model for step in result.steps)


class StopRequested(Exception):
    """Raised by `run_workflow(stop_after=N)` after N steps, to rehearse a crash."""


def _agents(client: GatewayClient | None) -> tuple[Agent[Triage], Agent[str], Agent[str]]:
    triage: Agent[Triage] = Agent(
        instructions="你是网店售后分拣员。阅读顾客留言，判断问题类别、订单号和紧急程度。",
        output_type=Triage, client=client)
    act: Agent[str] = Agent(
        instructions="你是网店售后专员。先用 get_order 核实订单，再用 open_ticket 创建工单，"
                     "最后用一句话说明做了什么。", tools=[get_order, open_ticket], client=client)
    writer: Agent[str] = Agent(
        instructions="你是网店客服，请根据处理结果给顾客写一段简短、真诚的中文回复。",
        client=client)
    return triage, act, writer


async def run_workflow(
    client: GatewayClient | None,
    data_dir: str | Path,
    inbox: Sequence[InboxMessage] = INBOX,
    *,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
) -> WorkflowReport:
    """Process `inbox`, resuming from the checkpoints in `data_dir`.

    `stop_after` stops (raising `StopRequested`) once that many steps ran in this call —
    a rehearsed crash, for the example's test and for trying the resume by hand.
    """
    data = Path(data_dir)
    store = OrderStore(data / "shop.db")
    store.seed_demo_data()
    checkpoints = Checkpoints(data / "checkpoints.json")
    triage_agent, act_agent, writer = _agents(client)
    report = WorkflowReport()

    def done(message: InboxMessage, step: str, value: Any) -> None:
        checkpoints.save(message.id, step, value)
        report.ran.append(f"{message.id}/{step}")
        log(f"  ✓ {message.id} {step}: {_preview(value)}")
        if stop_after is not None and len(report.ran) >= stop_after:
            raise StopRequested(f"stopped after {stop_after} steps (checkpoint saved)")

    for message in inbox:
        log(f"📨 {message.id} {message.text}")
        deps = ShopDeps(store, KnowledgeBase([]), customer_id=message.customer_id)
        for step in STEPS:
            if checkpoints.get(message.id, step) is not None:
                log(f"  ↷ {message.id} {step}: 已完成，跳过 (from checkpoint)")
                continue
            if step == "triage":
                result = await triage_agent.run(f"【分类】{message.text}")
                report.add(result)
                done(message, step, result.output.model_dump())
            elif step == "action":
                triage = Triage.model_validate(checkpoints.get(message.id, "triage"))
                acted = await act_agent.run(
                    f"【处理】订单 {triage.order_id or '无'}，类别 {triage.category}："
                    f"{triage.summary}。顾客原话：{message.text}", deps=deps)
                report.add(acted)
                done(message, step, {"ticket_id": _ticket_id(acted.steps),
                                     "note": acted.output})
            else:
                triage = Triage.model_validate(checkpoints.get(message.id, "triage"))
                action = checkpoints.get(message.id, "action")
                written = await writer.run(
                    f"【回复】订单 {triage.order_id or '无'}（{triage.summary}）。"
                    f"处理结果：{action['note']}（工单 {action['ticket_id']}）。"
                    f"顾客原话：{message.text}")
                report.add(written)
                done(message, step, written.output)
        report.results[message.id] = checkpoints.data.get(message.id, {})
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
