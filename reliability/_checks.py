"""What "the session is valid" means, checked on a stored history.

A history the gateway accepts and that lost nothing of what the user gave us:
- every assistant message has text or tool calls (never an empty one), and its tool-call ids
  are non-empty and unique within it (they are echoed back byte for byte);
- every tool message answers a call of the assistant message right before its run of tool
  messages, and every call is answered exactly once — except calls waiting for a person's
  decision in the last tool step (`pending` ids), which are answered by `resume`;
- a tool step's results come before the next user or assistant message;
- every prompt in `prompts` is stored as a user message, in the order given.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from kimi_agent.wire import AssistantMessage, Message, ToolMessage, UserMessage

__all__ = ["history_problems", "user_texts"]


def user_texts(history: Sequence[Message]) -> list[str]:
    """The text of each user message, in order."""
    texts = []
    for message in history:
        if isinstance(message, UserMessage):
            content = message.content
            texts.append(content if isinstance(content, str) else str(content))
    return texts


def history_problems(history: Sequence[Message], *, prompts: Sequence[str] = (),
                     pending: Collection[str] = ()) -> list[str]:
    """Everything wrong with `history` ([] when it is valid); see the module docstring."""
    problems: list[str] = []
    open_calls: dict[str, int] = {}
    open_at = -1
    for i, message in enumerate(history):
        if isinstance(message, ToolMessage):
            if open_at < 0:
                problems.append(f"#{i}: a tool message with no tool step before it")
                continue
            if message.tool_call_id not in open_calls:
                problems.append(f"#{i}: result for {message.tool_call_id!r}, which the step "
                                f"at #{open_at} did not call (or answered already)")
                continue
            del open_calls[message.tool_call_id]
            continue
        _close(problems, open_calls, open_at, last=False, pending=pending)
        open_calls, open_at = {}, -1
        if isinstance(message, AssistantMessage):
            calls = message.tool_calls or []
            if not calls and not message.text:
                problems.append(f"#{i}: an assistant message with neither text nor tool calls")
            ids = [call.id for call in calls]
            if any(not call_id for call_id in ids):
                problems.append(f"#{i}: a tool call with an empty id")
            if len(set(ids)) != len(ids):
                problems.append(f"#{i}: duplicate tool-call ids {ids}")
            if calls:
                open_calls = {call.id: i for call in calls}
                open_at = i
    _close(problems, open_calls, open_at, last=True, pending=pending)
    problems.extend(_lost(history, prompts))
    return problems


def _close(problems: list[str], open_calls: dict[str, int], at: int, *, last: bool,
           pending: Collection[str]) -> None:
    unanswered = [c for c in open_calls if not (last and c in pending)]
    if unanswered:
        problems.append(f"#{at}: calls {unanswered} have no result")


def _lost(history: Sequence[Message], prompts: Sequence[str]) -> list[str]:
    stored = user_texts(history)
    position = 0
    missing = []
    for prompt in prompts:
        try:
            position = stored.index(prompt, position) + 1
        except ValueError:
            missing.append(prompt)
    return [f"user message lost or out of order: {p!r}" for p in missing]
