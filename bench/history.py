"""Stored conversations for the long-history scenarios, as chat-completions wire dicts.

`history(n)` is a deterministic Chinese customer-service history of `n` messages in whole
turns of five: the user asks → the assistant calls two tools (with `reasoning_content`) → two
tool results → the assistant answers. About 85 estimated tokens a message, so 10,000 messages
are far over Kimi K2.6's 128K window and 1,000 are just under it.

`trim_to_budget` is what the hand-written loops do with a history that does not fit: keep the
newest whole turns whose estimated tokens fit. It is used only when kimi-agent is not there to
capture the request it really sends (the runner normally hands the hand-written loop the exact
messages kimi-agent sent, so both send the same request).
"""

from __future__ import annotations

import json
from typing import Any, Final

from bench.cachemodel import estimate_tokens

MESSAGES_PER_TURN: Final = 5
WINDOW: Final = 128 * 1024
OUTPUT_RESERVE: Final = 16384

_ASKS: Final = (
    "你好，我上周在你们店里买的那台空气净化器一直显示滤网需要更换，可是我才用了不到十天，"
    "能不能帮我查一下订单，看看是不是机器本身有问题？",
    "我想把收货地址改成公司的地址，就是上海市浦东新区张江路那一栋写字楼，"
    "订单号我发在上面了，麻烦尽快处理，明天就要发货了吧？",
    "请问会员积分什么时候到账？我昨天下单付款成功了，但是积分页面一直没有变化，"
    "是需要确认收货以后才会发放吗？",
    "退款申请已经提交三天了，状态还是审核中，我想知道大概还要多久，"
    "钱是原路退回到我的信用卡吗？",
)
_RESULTS: Final = (
    "订单状态：已签收；商品：空气净化器 KJ-300；签收时间：三天前；保修：一年内免费更换滤网，"
    "工单可在线提交。",
    "会员等级：金卡；可用积分：一千二百分；待发放积分：八十分，确认收货后七天内到账。",
    "物流信息：包裹在上海转运中心，预计明天下午送达；快递员电话已隐藏，可在应用内联系。",
    "退款记录：申请已通过初审，财务处理中，预计三到五个工作日原路退回，届时会有短信通知。",
)
_ANSWERS: Final = (
    "我查到了：您的订单已签收，滤网在一年保修期内可以免费更换。我已经为您提交了更换工单，"
    "师傅会在两个工作日内联系您上门处理，请保持电话畅通。",
    "已经帮您查过了：积分会在确认收货后七天内发放到账，目前显示待发放八十分。"
    "如果超过时间还没有到账，可以随时联系我，我再帮您催一下。",
    "您的退款已通过初审，正在财务处理，预计三到五个工作日原路退回您的信用卡，"
    "到账时会有短信提醒。给您带来不便，非常抱歉。",
)


def _turn(index: int) -> list[dict[str, Any]]:
    ask = _ASKS[index % len(_ASKS)]
    calls = [
        {
            "id": f"get_order:{2 * index + k}",
            "type": "function",
            "function": {
                "name": "get_order",
                "arguments": json.dumps(
                    {"order_id": f"DD{20260000 + index:08d}", "字段": ["状态", "物流"][k]},
                    ensure_ascii=False,
                ),
            },
        }
        for k in range(2)
    ]
    return [
        {"role": "user", "content": f"（第{index + 1}次咨询）{ask}"},
        {
            "role": "assistant",
            "reasoning_content": "用户在问订单的情况，我先查订单状态和物流信息。",
            "tool_calls": calls,
        },
        *(
            {
                "role": "tool",
                "tool_call_id": call["id"],
                "content": _RESULTS[(index + k) % len(_RESULTS)],
            }
            for k, call in enumerate(calls)
        ),
        {"role": "assistant", "content": _ANSWERS[index % len(_ANSWERS)]},
    ]


def history(n: int) -> list[dict[str, Any]]:
    """`n` stored messages (rounded down to whole turns of five), oldest first."""
    turns = max(1, n // MESSAGES_PER_TURN)
    return [message for index in range(turns) for message in _turn(index)]


def message_tokens(message: dict[str, Any]) -> float:
    return 4 + estimate_tokens(json.dumps(message, ensure_ascii=False, separators=(",", ":")))


def trim_to_budget(
    messages: list[dict[str, Any]], budget: float = WINDOW - OUTPUT_RESERVE,
    counts: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """The newest whole turns (a turn starts at a user message) whose tokens fit `budget`.

    `counts` caches each message's estimate by `id()` (the caller keeps the messages alive)."""
    budget -= 256 + budget / 20  # the head-room a careful loop keeps for its estimate's error
    total = 0.0
    start = len(messages)
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if counts is None:
            total += message_tokens(message)
        else:
            count = counts.get(id(message))
            if count is None:
                count = counts[id(message)] = message_tokens(message)
            total += count
        if total > budget:
            break
        if messages[index].get("role") == "user":
            start = index
    return messages[start:]


def sent_history(body: bytes) -> list[dict[str, Any]]:
    """The history part of a captured request: its messages without the system prompt and
    without the final user message (the prompt of the captured run)."""
    messages: list[dict[str, Any]] = json.loads(body)["messages"]
    if messages and messages[0].get("role") == "system":
        messages = messages[1:]
    return messages[:-1]
