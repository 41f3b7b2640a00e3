"""Fitting the history into the model's window.

Before each request the history is trimmed to the window minus the output budget. The system
prompt is not part of the history (the agent adds it to every request), so it always stays.
The default policy, `CacheAwareTrim`, drops the oldest whole turns in blocks so the prompt
prefix stays byte-stable for Kimi's prompt cache; `KeepRecentTurns` drops just enough of the
oldest turns for each request. A turn starts at a user message; neither ever separates an
assistant tool-call message from its tool results.
Trimming is a policy: pass your own (e.g. one that summarises old turns) to `Agent`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from kimi_agent.wire import AssistantMessage, Message, ToolMessage, UserMessage


@runtime_checkable
class TrimPolicy(Protocol):
    """Chooses the messages to send when the history does not fit.

    `counts[i]` is the estimated token count of `messages[i]`; `budget` is how many tokens
    the history may take. Return a history that is valid for the gateway: every assistant
    tool-call message followed by all of its tool results.
    """

    def trim(self, messages: Sequence[Message], counts: Sequence[int], budget: int
             ) -> list[Message]: ...


def blocks(messages: Sequence[Message]) -> list[tuple[int, int]]:
    """[start, end) ranges that must stay together: an assistant tool-call message with the
    tool messages that follow it, or a single message."""
    ranges: list[tuple[int, int]] = []
    i, n = 0, len(messages)
    while i < n:
        j = i + 1
        message = messages[i]
        if isinstance(message, AssistantMessage) and message.tool_calls:
            while j < n and isinstance(messages[j], ToolMessage):
                j += 1
        ranges.append((i, j))
        i = j
    return ranges


class KeepRecentTurns:
    """Keep the newest turns that fit; drop whole turns from the oldest.

    If the newest turn alone is too large, its oldest tool steps are dropped too, keeping the
    user message that opened it. `min_turns` turns are kept even over budget (the request
    then fails with a clear context-length error instead of losing the question).
    """

    def __init__(self, min_turns: int = 1) -> None:
        self.min_turns = max(1, min_turns)

    def trim(self, messages: Sequence[Message], counts: Sequence[int], budget: int
             ) -> list[Message]:
        if sum(counts) <= budget:
            return list(messages)
        turn_starts = [i for i, m in enumerate(messages) if isinstance(m, UserMessage)]
        if not turn_starts or turn_starts[0] != 0:
            turn_starts.insert(0, 0)
        total = sum(counts)
        keep_from_turn = 0
        while keep_from_turn < len(turn_starts) - self.min_turns and total > budget:
            start, end = turn_starts[keep_from_turn], turn_starts[keep_from_turn + 1]
            total -= sum(counts[start:end])
            keep_from_turn += 1
        start = turn_starts[keep_from_turn]
        kept = list(messages[start:])
        if total <= budget:
            return kept
        return _trim_inside_turn(kept, list(counts[start:]), budget)


def _trim_inside_turn(messages: list[Message], counts: list[int], budget: int) -> list[Message]:
    """Drop the oldest tool steps of one oversized turn, keeping its opening user message."""
    head = 1 if messages and isinstance(messages[0], UserMessage) else 0
    ranges = [r for r in blocks(messages) if r[0] >= head]
    total = sum(counts)
    dropped_until = head
    for start, end in ranges[:-1]:
        if total <= budget:
            break
        total -= sum(counts[start:end])
        dropped_until = end
    return messages[:head] + messages[dropped_until:]


class CacheAwareTrim:
    """The default: trim in blocks so the prompt prefix stays byte-identical between calls.

    Kimi caches a prompt prefix that is byte for byte the same as an earlier one. Dropping
    the oldest turn on every request (`KeepRecentTurns`) changes the first message each time,
    so once a conversation fills the window nothing of its history is served from the cache
    again. This policy trims only when the history outgrows the budget (the high-water mark),
    and then drops whole turns from the oldest until it fits `low_water` × budget; from then
    on every request starts at the same message until the budget is reached again.

    The cut is a pure function of the history seen from its first message (`cut`), so it is
    the same for every request of a run and for every run that sees the same history; a
    caller that stores the cut (the agent keeps it in the session) can read the history from
    there next time and get the same cut. A newest turn that alone outgrows the budget is
    trimmed inside, as `KeepRecentTurns` does.
    """

    def __init__(self, low_water: float = 0.6, min_turns: int = 1) -> None:
        if not 0.0 < low_water <= 1.0:
            raise ValueError(f"low_water must be in (0, 1], not {low_water!r}")
        self.low_water = low_water
        self.min_turns = max(1, min_turns)

    def cut(self, messages: Sequence[Message], counts: Sequence[int], budget: int) -> int:
        """Where the history sent to the model starts: replays the growth of the history and
        moves the start forward to a turn boundary each time the budget is passed."""
        starts = [i for i, m in enumerate(messages) if isinstance(m, UserMessage)]
        prefix = list(itertools.accumulate(counts, initial=0))
        at_starts = [prefix[s] for s in starts]
        low = budget * self.low_water
        cut = 0
        opened = 0                       # turn starts at or before message i
        for i in range(len(counts)):
            while opened < len(starts) and starts[opened] <= i:
                opened += 1
            if prefix[i + 1] - prefix[cut] <= budget:
                continue
            first = bisect.bisect_right(starts, cut)      # turn starts after the cut
            last = opened - self.min_turns               # keep `min_turns` turns at least
            if first > last:
                continue                                 # nothing may go: trimmed inside
            # the oldest turn start from which the history fits the low-water mark
            k = bisect.bisect_left(at_starts, prefix[i + 1] - low, first, last + 1)
            cut = starts[min(k, last)]
        return cut

    def trim(self, messages: Sequence[Message], counts: Sequence[int], budget: int
             ) -> list[Message]:
        if sum(counts) <= budget:
            return list(messages)
        start = self.cut(messages, counts, budget)
        kept = list(messages[start:])
        rest = list(counts[start:])
        if sum(rest) <= budget:
            return kept
        return _trim_inside_turn(kept, rest, budget)
