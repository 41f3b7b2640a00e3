"""Cache-aware trimming (the default): the prompt prefix stays byte-stable between trims,
the cut is a pure function of the history, and restarting from a stored cut changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_agent import Agent, CacheAwareTrim, KeepRecentTurns, SQLiteSession
from kimi_agent.testing import GatewaySimulator
from kimi_agent.wire import AssistantMessage, Message, UserMessage
from tests.session_worker import INSTRUCTIONS, TOOLS, responder
from tests.simkit import sim_client
from tests.test_context_trim import SMALL, long_history


def conversation(sizes: list[int]) -> tuple[list[Message], list[int]]:
    messages: list[Message] = []
    counts: list[int] = []
    for turn, size in enumerate(sizes):
        messages += [UserMessage(content=f"第{turn}个问题"), AssistantMessage(content="回答")]
        counts += [size, size]
    return messages, counts


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=80), st.integers(60, 400),
       st.floats(0.3, 0.9))
def test_the_first_message_changes_only_when_the_budget_is_passed(
        sizes: list[int], budget: int, low: float) -> None:
    policy = CacheAwareTrim(low_water=low)
    messages, counts = conversation(sizes)
    previous = 0
    for n in range(2, len(messages) + 1, 2):
        cut = policy.cut(messages[:n], counts[:n], budget)
        assert isinstance(messages[cut], UserMessage)
        assert cut >= previous                      # the start only moves forward
        if cut != previous:                         # ... and only when the budget was passed
            assert sum(counts[previous:n]) > budget
            assert sum(counts[cut:n]) <= budget or cut == n - 2
        previous = cut
        # restarting the replay at the stored cut gives the same cut
        assert policy.cut(messages[cut:n], counts[cut:n], budget) == 0


def test_trimming_in_blocks_keeps_the_prefix_for_many_requests() -> None:
    messages, counts = conversation([10] * 60)
    cache_aware = [CacheAwareTrim(low_water=0.5).cut(messages[:n], counts[:n], 200)
                   for n in range(2, 121, 2)]
    sliding = []
    for n in range(2, 121, 2):
        kept = KeepRecentTurns().trim(messages[:n], counts[:n], 200)
        sliding.append(n - len(kept))
    assert len(set(cache_aware)) < len(set(sliding)) / 4
    assert CacheAwareTrim().trim(messages, counts, 200)[0] is messages[
        CacheAwareTrim().cut(messages, counts, 200)]


@pytest.mark.anyio
async def test_runs_read_the_session_from_the_stored_window_and_keep_the_prefix(
        tmp_path: Path) -> None:
    """Once a run trims, the session remembers where the sent history starts: later runs
    read from there (not the whole history) and send the same first message, so the prompt
    prefix is byte-identical from run to run until the window fills again."""
    async with SQLiteSession("长对话", tmp_path / "s.db") as session:
        await session.add_items(long_history(turns=30, chars=400))
        sim = GatewaySimulator(responder=responder)
        async with sim_client(sim) as client:
            agent = Agent(SMALL, fallback=None, instructions=INSTRUCTIONS, tools=TOOLS,
                          client=client)
            firsts = []
            for question in ("你好", "订单 A1024 到哪了？", "谢谢"):
                result = await agent.run(question, session=session)
                firsts.append(sim.requests[-1].messages[1])
            start = await session.get_state("kimi_agent.window_start")
        assert isinstance(start, int) and start > 0
        assert firsts[0] == firsts[1] == firsts[2]
        assert len(result.messages) == len(await session.get_items()) - start
        assert all(r.ok for r in sim.requests)
