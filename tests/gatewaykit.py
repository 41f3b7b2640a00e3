"""Helpers for the gateway tests: error answers in the gateway's envelope, Kimi-shaped streams,
recorded sleeps, and an `Agent` run that reads the same streamed or not."""

from __future__ import annotations

from typing import Any

from kimi_agent import Agent, RetryPolicy
from kimi_agent.agent._events import TextDelta
from tests.scripted_http import Answer, completion


class Sleeps:
    """An injected sleep that records how long the client wanted to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def policy(sleeps: Sleeps, **kw: Any) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, random=lambda: 1.0, **kw)


def gateway_error(status: int, message: str, *, code: str | None = None,
                  error_type: str | None = None, headers: dict[str, str] | None = None,
                  ) -> Answer:
    """An error in the gateway's OpenAI envelope: `type` + `code` + `message`."""
    error: dict[str, Any] = {"message": message}
    if error_type is not None:
        error["type"] = error_type
    if code is not None:
        error["code"] = code
    return Answer(status, {"error": error}, headers=dict(headers or {}))


def chunk(delta: dict[str, Any], finish: str | None = None, *, model: str = "kimi-k2-6",
          usage: dict[str, Any] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if usage is not None:
        choice["usage"] = usage
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [choice]}


def text_events(text: str, *, model: str = "kimi-k2-6",
                reasoning: str = "想一想") -> list[dict[str, Any] | str]:
    """A Kimi-shaped stream of reasoning then `text` in pieces, then the finish chunk."""
    events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""},
                                                model=model)]
    events.append(chunk({"reasoning_content": reasoning}, model=model))
    events += [chunk({"content": text[i:i + 4]}, model=model) for i in range(0, len(text), 4)]
    events.append(chunk({}, "stop", model=model, usage={
        "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}))
    return events


def answer_ok(text: str, *, streamed: bool, model: str = "kimi-k2-6",
              headers: dict[str, str] | None = None) -> Answer:
    if streamed:
        return Answer(events=text_events(text, model=model), headers=dict(headers or {}))
    return Answer(200, completion(text, model=model), headers=dict(headers or {}))


def leaf(error: BaseException) -> BaseException:
    """The one error inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def run_agent(agent: Agent[Any], prompt: str, *, streamed: bool) -> tuple[Any, str]:
    """(result, streamed text) of a run, streamed or not; the run's error is raised as
    itself."""
    if not streamed:
        return await agent.run(prompt), ""
    seen = ""
    try:
        async with agent.stream(prompt) as run:
            async for event in run:
                if isinstance(event, TextDelta):
                    seen += event.text
    except BaseExceptionGroup as group:
        raise leaf(group) from None
    return run.result, seen
