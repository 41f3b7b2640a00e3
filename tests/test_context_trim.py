"""Fitting the window: `KeepRecentTurns` on its own (examples and properties), a policy of
the user's own honoured by the agent, and long stored conversations on the simulator: over
128K goes to kimi-k2-5 untrimmed, over both windows is trimmed and still accepted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_agent import Agent, KeepRecentTurns, MemorySession, TrimPolicy
from kimi_agent._tokens import estimate_tools, estimate_wire_message, estimate_wire_messages
from kimi_agent.models._profiles import KIMI_K2_5, ModelProfile
from kimi_agent.sessions._sqlite import SQLiteSession
from kimi_agent.sessions._trim import blocks
from kimi_agent.testing import GatewaySimulator
from kimi_agent.wire import (
    AssistantMessage,
    FunctionCall,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from tests.session_worker import INSTRUCTIONS, TOOLS, responder
from tests.simkit import sim_client

pytestmark = pytest.mark.anyio


def tool_step(tag: str, n_calls: int) -> list[Message]:
    calls = [ToolCall(id=f"get_order:{i}", function=FunctionCall(
        name="get_order", arguments=f'{{"order_id":"{tag}{i}"}}')) for i in range(n_calls)]
    return [AssistantMessage(reasoning_content=f"查{tag}", tool_calls=calls),
            *[ToolMessage(tool_call_id=c.id, content=f"{tag} 运输中") for c in calls]]


def turn(tag: str, steps: Sequence[int] = (), answer: bool = True) -> list[Message]:
    messages: list[Message] = [UserMessage(content=f"问题 {tag}")]
    for k, n_calls in enumerate(steps):
        messages += tool_step(f"{tag}.{k}.", n_calls)
    if answer:
        messages.append(AssistantMessage(content=f"回答 {tag}"))
    return messages


def check_valid(kept: list[Message]) -> None:
    """Every assistant tool-call message is followed by exactly its results; no tool message
    stands without its call; the history starts with a user message."""
    assert kept and isinstance(kept[0], UserMessage)
    i = 0
    while i < len(kept):
        message = kept[i]
        assert not isinstance(message, ToolMessage), f"orphan tool message at {i}"
        if isinstance(message, AssistantMessage) and message.tool_calls:
            ids = [c.id for c in message.tool_calls]
            results = kept[i + 1: i + 1 + len(ids)]
            assert [r.tool_call_id for r in results if isinstance(r, ToolMessage)] == ids
            i += 1 + len(ids)
        else:
            i += 1


def test_a_history_that_fits_is_kept_whole() -> None:
    history = turn("1", [2]) + turn("2")
    counts = [10] * len(history)
    assert KeepRecentTurns().trim(history, counts, sum(counts)) == history


def test_oldest_whole_turns_go_first_and_tool_pairs_stay_together() -> None:
    history = turn("1", [1]) + turn("2", [3]) + turn("3", [2, 1]) + turn("4", [], answer=False)
    counts = [10] * len(history)
    kept = KeepRecentTurns().trim(history, counts, budget=130)
    check_valid(kept)
    assert sum(counts[: len(kept)]) <= 130
    assert kept == history[len(history) - len(kept):], "a suffix of whole turns"
    assert kept[0] == UserMessage(content="问题 3")
    assert kept[-1] == UserMessage(content="问题 4"), "the newest turn is kept"


def test_an_oversized_newest_turn_drops_its_oldest_steps_but_keeps_its_question() -> None:
    history = turn("1") + turn("2", [2, 2, 2, 1], answer=False)
    counts = [10] * len(history)
    kept = KeepRecentTurns().trim(history, counts, budget=60)
    check_valid(kept)
    assert kept[0] == UserMessage(content="问题 2")
    assert kept[-2:] == history[-2:], "the newest step stays whole"
    assert len(kept) * 10 <= 60


def test_min_turns_are_kept_even_over_budget() -> None:
    history = turn("1") + turn("2") + turn("3")
    counts = [100] * len(history)
    kept = KeepRecentTurns(min_turns=2).trim(history, counts, budget=10)
    assert kept[0] == UserMessage(content="问题 2")
    check_valid(kept)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Message], list[int]]:
    history: list[Message] = []
    for t in range(draw(st.integers(1, 6))):
        steps = draw(st.lists(st.integers(1, 3), max_size=3))
        history += turn(str(t), steps, answer=draw(st.booleans()))
    counts = draw(st.lists(st.integers(1, 50), min_size=len(history), max_size=len(history)))
    return history, counts


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(0, 600))
def test_trimming_properties(drawn: tuple[list[Message], list[int]], budget: int) -> None:
    history, counts = drawn
    kept = KeepRecentTurns().trim(history, counts, budget)
    check_valid(kept)
    last_user = max(i for i, m in enumerate(history) if isinstance(m, UserMessage))
    assert history[last_user] in kept, "the newest question is never dropped"
    assert kept[-1] is history[-1], "the newest message stays"
    position = {id(m): i for i, m in enumerate(history)}
    indexes = [position[id(m)] for m in kept]
    assert indexes == sorted(indexes), "order is kept"
    size = sum(counts[i] for i in indexes)
    if size > budget:  # over budget only when nothing more could go: question + last block
        start, _ = blocks(history)[-1]
        assert indexes == sorted({last_user, *range(start, len(history))})


# --------------------------------------------------------------------------- in the agent


SMALL = ModelProfile(name="kimi-k2-6", context_window=6000, max_output=1000)
"""kimi-k2-6 as the agent sees it, with a tiny window, so trimming happens at test sizes."""


class SummariseOldTurns:
    """A policy of the user's own: the turns that do not fit become one summary message."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def trim(self, messages: Sequence[Message], counts: Sequence[int], budget: int
             ) -> list[Message]:
        self.calls.append((len(messages), budget))
        kept = KeepRecentTurns().trim(messages, counts, budget - 100)
        dropped = [m for m in messages[: len(messages) - len(kept)] if isinstance(m, UserMessage)]
        summary = SystemMessage(content=f"此前对话摘要：客户问过 {len(dropped)} 个问题，都已解答。")
        return [summary, *kept]


def long_history(turns: int, chars: int) -> list[Message]:
    text = "这是一段很长的客服对话记录，用于测试上下文窗口的处理。"
    body = (text * (chars // len(text) + 1))[:chars]
    history: list[Message] = []
    for t in range(turns):
        history += [UserMessage(content=f"第{t}轮问题：{body}"),
                    AssistantMessage(content=f"第{t}轮回答：{body}", reasoning_content="回答。",
                                     model="kimi-k2-6")]
    return history


def request_tokens(body: dict[str, Any]) -> int:
    max_tokens: int = body["max_tokens"]
    return estimate_wire_messages(body["messages"]) + estimate_tools(body.get("tools")) + max_tokens


async def test_a_custom_trim_policy_is_honoured() -> None:
    policy = SummariseOldTurns()
    assert isinstance(policy, TrimPolicy)
    session = MemorySession("t", long_history(turns=12, chars=400))
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(SMALL, fallback=None, instructions=INSTRUCTIONS, tools=TOOLS,
                      client=client, trim_policy=policy)
        result = await agent.run("订单 A1024 到哪了？", session=session)
    assert result.status == "completed" and all(r.ok for r in sim.requests)
    assert len(policy.calls) == 2, "asked before each of the two model calls"
    for request in sim.requests:
        sent = request.messages
        assert sent[0]["role"] == "system" and sent[0]["content"] == INSTRUCTIONS
        assert sent[1]["role"] == "system" and sent[1]["content"].startswith("此前对话摘要")
        assert sent[2]["role"] == "user"
        assert request_tokens(request.body) <= SMALL.context_window
    assert sim.requests[-1].messages[-1]["role"] == "tool"
    assert len(await session.get_items()) == 24 + 4, "trimming never touches the session"


async def test_default_trimming_in_a_run_keeps_the_new_question_and_its_steps() -> None:
    session = MemorySession("t", long_history(turns=12, chars=400))
    sim = GatewaySimulator(responder=responder)
    async with sim_client(sim) as client:
        agent = Agent(SMALL, fallback=None, instructions=INSTRUCTIONS, tools=TOOLS,
                      client=client)
        result = await agent.run("订单 A1024 到哪了？", session=session)
    assert result.output.startswith("查询结果") and all(r.ok for r in sim.requests)
    last = sim.requests[-1].messages
    assert last[1]["role"] == "user" and last[1]["content"].startswith("第")
    assert last[-3:] == [m.to_wire() for m in result.messages[-4:-1]], "the new turn, whole"
    assert last[-3] == {"role": "user", "content": "订单 A1024 到哪了？"}
    assert len(last) - 1 < len(result.messages) - 1
    assert request_tokens(sim.requests[-1].body) <= SMALL.context_window


async def test_over_128k_goes_to_k2_5_untrimmed(tmp_path: Any) -> None:
    history = long_history(turns=100, chars=1000)
    size = sum(estimate_wire_message(m.to_wire()) for m in history)
    assert 131_072 < size < 200_000
    async with SQLiteSession("long", tmp_path / "long.db") as session:
        await session.add_items(history)
        sim = GatewaySimulator(responder=responder)
        async with sim_client(sim) as client:
            agent = Agent(instructions=INSTRUCTIONS, tools=TOOLS, client=client)
            result = await agent.run("订单 A1024 到哪了？", session=session)
        assert result.status == "completed" and all(r.ok for r in sim.requests)
        assert result.steps[-1].model == "kimi-k2-5"
        assert {s.fallback_reason for s in result.steps} == {"context_length"}
        assert [r.model for r in sim.requests] == ["kimi-k2-5", "kimi-k2-5"]
        assert len(sim.requests[-1].messages) == 1 + len(history) + 3, "nothing trimmed"
        stored = await session.get_items()
        assert [m.model for m in stored[-2:] if isinstance(m, AssistantMessage)] == ["kimi-k2-5"]


async def test_over_both_windows_is_trimmed_to_fit_k2_5_and_accepted(tmp_path: Any) -> None:
    history = long_history(turns=200, chars=1000)
    assert sum(estimate_wire_message(m.to_wire()) for m in history) > 262_144
    async with SQLiteSession("huge", tmp_path / "huge.db") as session:
        await session.add_items(history)
        sim = GatewaySimulator(responder=responder)
        async with sim_client(sim) as client:
            agent = Agent(instructions=INSTRUCTIONS, tools=TOOLS, client=client)
            result = await agent.run("订单 A1024 到哪了？", session=session)
        assert result.status == "completed" and all(r.ok for r in sim.requests)
        assert [r.model for r in sim.requests] == ["kimi-k2-5", "kimi-k2-5"]
        for request in sim.requests:
            sent = request.messages
            assert sent[1]["role"] == "user" and sent[1]["content"] != history[0].content
            assert len(sent) < 1 + len(history)
            assert request_tokens(request.body) <= KIMI_K2_5.context_window
        assert sim.requests[-1].messages[-3]["content"] == "订单 A1024 到哪了？"
        assert len(await session.get_items()) == len(history) + 4
