"""The demo's script: what the customer says, and a scripted "model" for the simulator.

演示脚本。`FIRST_VISIT` and `RETURNING_VISIT` are the customer's messages (the second list is
used when the session already has a history). `shop_responder` plays the model on the
gateway simulator: it decides which tools to call from the customer's words, and writes its
answers **from the tool results it receives** — order status, tracking events, FAQ passages,
the refund id — so the demo is a true end-to-end run: real tools on a real SQLite file, real
HTTP to a loopback server, the agent's real loop. It holds no state of its own: everything it
knows comes from the request, as with a real model, so a conversation can continue in a
later process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kimi_agent.testing import Reply, SimRequest

__all__ = ["FIRST_VISIT", "RETURNING_VISIT", "shop_responder"]

FIRST_VISIT = (
    "你好！我的订单 A1024 到哪了？大概什么时候能到？另外想问下，收到货如果不满意可以退吗？",
    "还有，上个月买的保温杯（订单 A1025）有一个杯盖漏水，能退一个杯子的钱吗？",
    "说实话你们这次发货太慢了，上次买东西也拖了好几天，我要投诉！我的手机号是 13812345678，"
    "请尽快联系我。",
)
RETURNING_VISIT = (
    "你好，我又来了。耳机现在到哪了？保温杯的退款什么时候到账？",
    "好的，谢谢！",
)

_ORDER_ID = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]\d{4})(?!\d)")
_POLICY = re.compile(r"退货|退换|换货|不满意|运费|包邮|发票|会员|积分|付款|到账|多久")
_REFUND = re.compile(r"退.{0,6}(钱|款)|退款")
_HANDOFF = re.compile(r"投诉|人工|太差|太慢|气死")
_GREETING = re.compile(r"又来|你好|您好|在吗")
_THANKS = re.compile(r"谢谢|多谢|好的|再见")


@dataclass(frozen=True)
class _Result:
    """One tool call of the conversation and what it returned (`data` None on an error)."""

    name: str
    arguments: dict[str, Any]
    data: Any
    text: str


def shop_responder(request: SimRequest) -> Reply:
    """The scripted model of the demo (see the module docstring). It plays whichever agent
    holds the conversation — the front desk (`shop`) or the refunds desk — as the request's
    tools show, like a real model reading its own instructions and tools."""
    from kimi_agent.testing import Reply  # the simulator is an optional extra

    if request.ends_with_tool_results and not _just_transferred(request):
        fields = _after_tools(request)
    else:
        fields = _on_customer(request)
    return Reply(**fields)


def _refunds_desk(request: SimRequest) -> bool:
    return "request_refund" in request.tool_names


def _just_transferred(request: SimRequest) -> bool:
    """The last step handed the conversation over: the new desk takes the customer's
    message as its own turn."""
    return bool(request.tool_results) and all(
        r.name.startswith("transfer_to_") for r in request.tool_results)


def _reply(text: str | None = None, reasoning: str | None = None,
           tool_calls: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The fields of a `Reply` (built by `shop_responder`, so that importing this module does
    not need the simulator's extra)."""
    return {"text": text, "reasoning": reasoning, "tool_calls": tool_calls or []}


# ---------------------------------------------------------------- the customer spoke


def _on_customer(request: SimRequest) -> dict[str, Any]:
    text = request.last_user_text
    earlier = _results(request.messages[:-1])
    if _HANDOFF.search(text):
        return _reply(
            reasoning="顾客在投诉，情绪不满，应转接人工投诉专席，并附上已处理事项的摘要。",
            text="非常抱歉这次让您久等了，给您带来不好的体验。我马上为您转接投诉专席，"
                 "专人会尽快与您联系。",
            tool_calls=[("handoff_to_human", {"reason": "complaint",
                                              "summary": _handoff_summary(text, earlier)})])
    ids = _order_ids(text)
    refund = bool(ids) and bool(_REFUND.search(text))
    if _refunds_desk(request):
        if refund:
            return _reply(reasoning=f"顾客要为订单 {ids[0]} 退款，先查订单确认商品和可退金额。",
                         text="您好，我是退款专员，我先核实一下订单信息。",
                         tool_calls=[("get_order", {"order_id": ids[0]})])
        return _reply(reasoning="这不是退款问题，交回前台客服处理。",
                     tool_calls=[("transfer_to_shop", {"reason": "非退款问题"})])
    if refund:
        return _reply(reasoning="退款由退款专员处理，转接过去。",
                     text="退款问题我请退款专员为您处理。",
                     tool_calls=[("transfer_to_refunds", {"reason": f"订单 {ids[0]} 申请退款"})])
    if _GREETING.search(text) and earlier and not ids:
        return _welcome_back(text, earlier)
    if ids:
        calls: list[tuple[str, dict[str, Any]]] = [("get_order", {"order_id": ids[0]}),
                                                   ("get_shipping_status", {"order_id": ids[0]})]
        question = _policy_question(text)
        if question:
            calls.append(("faq_search", {"query": question}))
        return _reply(reasoning="订单状态、物流轨迹和退货政策互不依赖，可以同时查询。",
                     text="好的，我同时为您查询订单、物流" + ("和退货政策。" if question else "。"),
                     tool_calls=calls)
    if _THANKS.search(text) and not _POLICY.search(text):
        return _reply(reasoning="顾客表示感谢，礼貌结束。",
                     text="不客气！祝您生活愉快，有问题随时找小象～")
    return _reply(reasoning="政策类问题，先检索知识库。",
                 tool_calls=[("faq_search", {"query": _policy_question(text) or text})])


def _welcome_back(text: str, earlier: list[_Result]) -> dict[str, Any]:
    """A returning customer: greet with what happened last time, and check on it."""
    refunds = [r for r in earlier if r.name == "request_refund" and isinstance(r.data, dict)]
    handoffs = [r for r in earlier if r.name == "handoff_to_human"]
    looked_up = _unique(str(r.arguments.get("order_id", "")).upper() for r in earlier
                        if r.name in ("get_order", "get_shipping_status"))
    refunded = {str(r.data.get("order_id")) for r in refunds}
    memory = []
    if looked_up:
        memory.append(f"查询了订单 {'、'.join(looked_up)}")
    for r in refunds:
        memory.append(f"为 {r.data.get('order_id')} 申请了 ¥{r.data.get('amount')} 的退款"
                      f"（退款单号 {r.data.get('refund_id')}）")
    if handoffs:
        memory.append("您的投诉也已转给投诉专席跟进")
    greeting = "欢迎回来！" + ("上次您" + "，".join(memory) + "。" if memory else "")
    calls: list[tuple[str, dict[str, Any]]] = []
    for order_id in looked_up:
        name = "get_order" if order_id in refunded else "get_shipping_status"
        calls.append((name, {"order_id": order_id}))
    if _POLICY.search(text):
        calls.append(("faq_search", {"query": "退款多久到账" if refunded else text}))
    if not calls:
        return _reply(reasoning="老顾客回访。", text=greeting + "请问今天有什么可以帮您？")
    return _reply(reasoning="老顾客回访：先根据历史记录问候，再同时查询上次涉及订单的最新进展。",
                 text=greeting + "我先帮您看看最新进展。", tool_calls=calls)


# ---------------------------------------------------------------- tool results came back


def _after_tools(request: SimRequest) -> dict[str, Any]:
    text = request.last_user_text
    latest = _results(request.messages)
    now = latest[-len(request.tool_results):]
    names = {r.name for r in now}
    if names == {"get_order"} and _REFUND.search(text) and len(now) == 1:
        return _refund_step(text, now[0])
    ordered = {str(r.data.get("order_id")) for r in now
               if r.name == "get_order" and isinstance(r.data, dict)}
    parts = [_describe(r, named=ordered) for r in now]
    if "request_refund" in names:
        closing = "退款结果会短信通知您，还有什么可以帮您？"
    else:
        closing = "还有什么可以帮您的吗？"
    return _reply(reasoning="根据工具返回的结果整理答复。", text="".join(parts) + closing)


def _refund_step(text: str, order: _Result) -> dict[str, Any]:
    data = order.data
    if not isinstance(data, dict):
        return _reply(reasoning="订单查询失败，如实告知。",
                     text=f"抱歉，没能查到这个订单：{_error(order.text)}请核对订单号。")
    refundable = float(data.get("refundable") or 0)
    if refundable <= 0:
        return _reply(reasoning="没有可退金额。",
                     text=f"订单 {data['order_id']} 当前状态为“{data.get('status_text')}”，"
                          f"已没有可退金额（已退 ¥{data.get('refunded')}）。还有什么可以帮您？")
    items = data.get("items") or []
    one = re.search(r"[一1]\s*[个件只杯]", text)
    amount = float(items[0]["unit_price"]) if items and one else refundable
    amount = min(amount, refundable)
    what = f"{items[0]['name']} ×1" if items and one else "整单"
    reason = ("商品质量问题：杯盖漏水，退一件" if "漏水" in text else "顾客申请退款") + \
             f"（{what}）"
    return _reply(
        reasoning=f"订单可退 ¥{refundable:.2f}，顾客要退 {what}，金额 ¥{amount:.2f}；"
                  "退款需要人工审批。",
        text=f"核实到订单 {data['order_id']} 中的{what}，单价 ¥{amount:.2f}。"
             "漏水属于质量问题，我这就为您提交退款申请，需要同事审批一下。",
        tool_calls=[("request_refund", {"order_id": data["order_id"], "amount": amount,
                                        "reason": reason})])


def _describe(result: _Result, *, named: set[str] | frozenset[str] = frozenset()) -> str:
    """One sentence or two about a tool result; `named` holds the orders already introduced
    by a `get_order` result of the same step."""
    data = result.data
    if not isinstance(data, dict):
        return f"（{result.name} 暂时没有查到：{_error(result.text)}）"
    if result.name == "get_order":
        items = "、".join(f"{i['name']}×{i['quantity']}" for i in data.get("items", []))
        text = (f"订单 {data['order_id']}（{items}，共 ¥{data['total']}）"
                f"当前状态：{data['status_text']}。")
        if float(data.get("refunded") or 0) > 0:
            text += f"已退款 ¥{data['refunded']}，剩余可退 ¥{data['refundable']}。"
        return text
    if result.name == "get_shipping_status":
        if not data.get("shipped"):
            return f"{data.get('message', '订单尚未发货。')}"
        events = data.get("events") or [{}]
        latest = events[0]
        when = str(latest.get("time", ""))[:16].replace("T", " ")
        subject = "" if data.get("order_id") in named else f"订单 {data.get('order_id')} "
        return (f"{subject}由{data['carrier']}配送（运单号 {data['tracking_no']}），"
                f"{data['status_text']}，最新动态：{when} {latest.get('location', '')} "
                f"{latest.get('description', '')}，预计 {data['estimated_delivery']} 送达。")
    if result.name == "faq_search":
        hits = data.get("results") or []
        if not hits:
            return "这个问题知识库里暂时没有答案，我可以帮您转人工确认。"
        answer = "".join(line.strip() for line in str(hits[0]["answer"]).splitlines())
        return f"关于“{hits[0]['question']}”：{answer}"
    if result.name == "request_refund":
        when = re.search(r"预计[^。.]*", str(data.get("message", "")))
        eta = f"，{when.group(0)}。" if when else "。"
        return (f"您的退款申请已审批通过：订单 {data['order_id']} 退款 ¥{data['amount']} "
                f"已提交（退款单号 {data['refund_id']}）{eta}")
    return f"{result.name} 已完成。"


# ---------------------------------------------------------------- reading the conversation


def _results(messages: Iterable[dict[str, Any]]) -> list[_Result]:
    """Every tool call of the conversation with its result, in order.

    Tool-call ids are opaque and repeat across turns, so each tool message is paired with
    the calls of the assistant message just before it, never by id alone.
    """
    out: list[_Result] = []
    calls: dict[str, tuple[str, str]] = {}
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            calls = {str(c.get("id")): (str(c["function"]["name"]),
                                        str(c["function"].get("arguments") or "{}"))
                     for c in message.get("tool_calls") or []}
        elif role == "tool":
            name, raw = calls.get(str(message.get("tool_call_id")), ("", "{}"))
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            try:
                data: Any = json.loads(text)
            except ValueError:
                data = None
            try:
                arguments = json.loads(raw, strict=False)
            except ValueError:
                arguments = {}
            out.append(_Result(name, arguments if isinstance(arguments, dict) else {},
                               data, text))
    return out


def _handoff_summary(text: str, earlier: list[_Result]) -> str:
    orders = _unique(str(r.arguments.get("order_id", "")).upper() for r in earlier
                     if r.name in ("get_order", "get_shipping_status"))
    done = [f"已为 {r.data['order_id']} 提交退款 ¥{r.data['amount']}（{r.data['refund_id']}）"
            for r in earlier if r.name == "request_refund" and isinstance(r.data, dict)]
    parts = [f"顾客投诉发货慢，原话：“{text}”"]
    if orders:
        parts.append(f"本次咨询订单：{'、'.join(orders)}")
    parts.extend(done)
    return "；".join(parts) + "。"


def _order_ids(text: str) -> list[str]:
    return _unique(m.upper() for m in _ORDER_ID.findall(text))


def _policy_question(text: str) -> str | None:
    for clause in re.split(r"[，,。？?！!；;]", text):
        clause = re.sub(r"^(另外|还有|对了)?(想问下|想问一下|请问)?", "", clause.strip())
        if clause and _POLICY.search(clause) and not _ORDER_ID.search(clause):
            return clause
    return None


def _error(text: str) -> str:
    """The Chinese part of a tool's error message (the tools write Chinese first)."""
    text = re.sub(r"^Tool '[^']+' failed: \w+: ", "", text)
    match = re.match(r"[^A-Za-z]*[。！]", text)
    return match.group(0) if match else text


def _unique(values: Iterable[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]
