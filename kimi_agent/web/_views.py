"""What a run looks like on the wire, and what each audience may see of it.

A run's events become **records**: plain JSON-able dicts with a `kind`, kept whole in the
run's log (`_runs.LiveRun`). Each viewer gets a filtered copy: staff see everything;
customers do not see the model's reasoning nor tool arguments and results unless the app
opts in (`WebOptions.show_reasoning`, `show_tool_details`), nor a hand-off's summary
(written for the person who takes over), nor internal error details.

Record kinds, in the order a run produces them:
`run_started` → per step (`reasoning_delta`* `text_delta`* `tool_call_started`*
`tool_call_finished`* `step_finished`) → [`approval_requested` | `handoff`] → `usage` →
`done`; or `error` as the last record when the run failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

from kimi_agent import PendingApproval, RunResult
from kimi_agent import events as ev
from kimi_agent.wire import AssistantMessage, Message, ToolMessage, UserMessage

__all__ = ["DEFAULT_TOOL_LABELS", "GENERIC_TOOL_LABEL", "Record", "Visibility"]

Record = dict[str, Any]

GENERIC_TOOL_LABEL = "正在处理…"
DEFAULT_TOOL_LABELS: Mapping[str, str] = {
    "get_order": "正在查询订单…",
    "get_shipping_status": "正在查询物流…",
    "faq_search": "正在查找帮助信息…",
    "request_refund": "正在提交退款申请…",
    "open_ticket": "正在创建工单…",
    "handoff_to_human": "正在为您转接人工客服…",
    "current_time": "正在查看时间…",
    "calculate": "正在计算…",
    "http_get": "正在查询资料…",
}
"""Tool name → the progress line a customer sees while it runs (`GENERIC_TOOL_LABEL` for
any other tool). Apps add or replace entries with `WebOptions.tool_labels`."""

CUSTOMER_ERROR_TEXT = "抱歉，服务暂时出了点问题，请稍后再试。"
"""What a customer reads when a run fails (staff see the error itself)."""


@dataclass(frozen=True)
class Visibility:
    """What one viewer may see of runs and histories."""

    staff: bool = False
    reasoning: bool = False
    tool_details: bool = False
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOOL_LABELS))

    def label(self, tool: str) -> str:
        return self.labels.get(tool, GENERIC_TOOL_LABEL)


STAFF = Visibility(staff=True, reasoning=True, tool_details=True)


# ---------------------------------------------------------------- events → records


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=str)


def pending_record(pending: PendingApproval, labels: Visibility) -> Record:
    return {"call_id": pending.call_id, "tool": pending.tool,
            "label": labels.label(pending.tool), "arguments": pending.arguments}


def event_records(event: ev.Event, *, session_id: str, labels: Visibility) -> list[Record]:
    """The records of one agent event (full detail; filter with `for_viewer`)."""
    if isinstance(event, ev.RunStarted):
        return [{"kind": "run_started", "run_id": event.run_id, "session_id": session_id,
                 "model": event.model}]
    if isinstance(event, ev.ReasoningDelta):
        return [{"kind": "reasoning_delta", "step": event.step, "text": event.text}]
    if isinstance(event, ev.TextDelta):
        return [{"kind": "text_delta", "step": event.step, "text": event.text}]
    if isinstance(event, ev.ToolCallStarted):
        return [{"kind": "tool_call_started", "step": event.step, "call_id": event.call_id,
                 "name": event.name, "label": labels.label(event.name),
                 "arguments": event.arguments}]
    if isinstance(event, ev.ToolCallFinished):
        record = event.record
        return [{"kind": "tool_call_finished", "step": event.step, "call_id": record.call_id,
                 "name": record.name, "status": record.status, "result": record.result,
                 "error": record.error, "duration": round(record.duration, 3)}]
    if isinstance(event, ev.FallbackActivated):
        return [{"kind": "fallback", "step": event.step, "from_model": event.from_model,
                 "to_model": event.to_model, "reason": event.reason}]
    if isinstance(event, ev.StepFinished):
        return [{"kind": "step_finished", "step": event.step.index,
                 "model": event.step.model}]
    if isinstance(event, ev.RunFinished):
        return result_records(event.result, labels)
    return []


def result_records(result: RunResult[Any], labels: Visibility) -> list[Record]:
    """How a finished run ends its log: approvals or hand-off, usage, done."""
    out: list[Record] = []
    if result.status == "pending_approval":
        out.append({"kind": "approval_requested",
                    "pending": [pending_record(p, labels) for p in result.pending_approvals]})
    if result.status == "handoff" and result.handoff is not None:
        handoff = result.handoff
        out.append({"kind": "handoff", "reason": handoff.reason, "queue": handoff.queue,
                    "summary": handoff.summary})
    usage = result.usage
    out.append({"kind": "usage", "requests": usage.requests,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens, "model": result.model})
    out.append({"kind": "done", "run_id": result.run_id, "status": result.status,
                "output": _jsonable(result.output)})
    return out


def error_record(code: str, message: str) -> Record:
    return {"kind": "error", "code": code, "message": message}


# ---------------------------------------------------------------- what a viewer sees


def for_viewer(record: Record, view: Visibility) -> Record | None:
    """`record` as `view` may see it (None: not at all)."""
    if view.staff:
        return record
    kind = record["kind"]
    if kind == "reasoning_delta" and not view.reasoning:
        return None
    if kind == "fallback":
        return None
    if kind == "tool_call_started" and not view.tool_details:
        return {k: v for k, v in record.items() if k != "arguments"}
    if kind == "tool_call_finished" and not view.tool_details:
        return {k: v for k, v in record.items() if k not in ("result", "error")}
    if kind == "approval_requested" and not view.tool_details:
        return {**record, "pending": [{k: v for k, v in p.items() if k != "arguments"}
                                      for p in record["pending"]]}
    if kind == "handoff":
        return {k: v for k, v in record.items() if k != "summary"}
    if kind == "error" and record.get("code") == "run_failed":
        return {**record, "message": CUSTOMER_ERROR_TEXT}
    return record


def pending_view(pending: list[PendingApproval], view: Visibility) -> list[Record]:
    records = [pending_record(p, view) for p in pending]
    if view.tool_details:
        return records
    return [{k: v for k, v in r.items() if k != "arguments"} for r in records]


def history_view(messages: list[Message], view: Visibility) -> list[Record]:
    """A conversation's messages as `view` may see them.

    Staff get every message whole. Customers get their own messages and the assistant's
    text, with each tool call as a name and a label (arguments, results and reasoning only
    when the app opts in).
    """
    if view.staff:
        return [m.model_dump(mode="json", exclude_none=True) for m in messages]
    out: list[Record] = []
    for message in messages:
        if isinstance(message, UserMessage):
            out.append({"role": "user", "content": message.content})
        elif isinstance(message, AssistantMessage):
            item: Record = {"role": "assistant", "content": message.content or ""}
            if view.reasoning and message.reasoning_content:
                item["reasoning"] = message.reasoning_content
            if message.tool_calls:
                item["tool_calls"] = [
                    {"call_id": c.id, "name": c.function.name,
                     "label": view.label(c.function.name),
                     **({"arguments": c.function.arguments} if view.tool_details else {})}
                    for c in message.tool_calls]
            out.append(item)
        elif isinstance(message, ToolMessage) and view.tool_details:
            out.append({"role": "tool", "tool_call_id": message.tool_call_id,
                        "content": message.content})
    return out
