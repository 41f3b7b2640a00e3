"""The floor: the same exchange written by hand on bare httpx or httpx2.

No framework: a dict request, `json` via the client, SSE through httpx-sse (httpx) or
httpx2's own `EventSource` (both derive from the same parser), tools run with
`asyncio.gather`. What any framework adds on top of this is its overhead.

Streamed bodies are read to their end after `[DONE]` (bounded), as a careful hand-written loop
does: leaving the body unread makes the HTTP library close the connection, and the next
request pays a new connection. The bench counts new connections per conversation for every
target, so a loop with that bug would show it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bench.history import trim_to_budget
from bench.targets import ConversationRunner
from bench.work import MAX_TOKENS, MODEL, TOOLS, lookup_body

MAX_STEPS = 4
MAX_EVENTS_AFTER_DONE = 16


def parse_limits(variant: str) -> tuple[int | None, int | None] | None:
    """'httpx2:200/50' → (200, 50) connection-pool limits; 'none' means unbounded."""
    if ":" not in variant:
        return None
    connections, _, keepalive = variant.partition(":")[2].partition("/")

    def number(text: str) -> int | None:
        return None if text in ("", "none") else int(text)

    return number(connections), number(keepalive)


async def run_tool(call: dict[str, Any]) -> str:
    function = call["function"]
    arguments = json.loads(function.get("arguments") or "{}", strict=False)
    if function["name"] != "lookup":
        return f"unknown tool {function['name']}"
    return await lookup_body(**arguments)


def assistant_echo(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant tool-call message as Kimi wants it back."""
    echo: dict[str, Any] = {
        "role": "assistant",
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {
                "name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
            for c in message["tool_calls"]
        ],
        "reasoning_content": message.get("reasoning_content") or " ",
    }
    if message.get("content"):
        echo["content"] = message["content"]
    return echo


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold streamed chunks into one assistant message (tool calls assembled by index)."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        choices = chunk.get("choices") or ()
        if not choices:
            continue
        delta = choices[0].get("delta") or {}
        if delta.get("reasoning_content"):
            reasoning.append(delta["reasoning_content"])
        if delta.get("content"):
            content.append(delta["content"])
        for part in delta.get("tool_calls") or ():
            slot = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": []})
            if part.get("id"):
                slot["id"] = part["id"]
            function = part.get("function") or {}
            if function.get("name"):
                slot["name"] = function["name"]
            if function.get("arguments"):
                slot["arguments"].append(function["arguments"])
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(content),
        "reasoning_content": "".join(reasoning),
    }
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": "".join(c["arguments"]) or "{}"}}
            for _, c in sorted(calls.items())
        ]
    return message


class HandWritten(ConversationRunner):
    def __init__(self, base_url: str, streamed: bool, variant: str) -> None:
        super().__init__(base_url, streamed, variant)
        self.library = "httpx2" if variant.startswith("httpx2") else "httpx"
        self.client: Any = None

    def http_client(self) -> str:
        return self.library

    async def start(self) -> None:
        if self.library == "httpx2":
            import httpx2 as lib
        else:
            import httpx as lib  # type: ignore[no-redef]
        kwargs: dict[str, Any] = {}
        limits = parse_limits(self.variant)
        if limits is not None:
            kwargs["limits"] = lib.Limits(
                max_connections=limits[0], max_keepalive_connections=limits[1]
            )
        self.client = lib.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": "Bearer bench-key"},
            timeout=lib.Timeout(300.0, connect=10.0),  # kimi-agent's default: a fair floor
            **kwargs,
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    @asynccontextmanager
    async def _events(self, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[Any]]:
        if self.library == "httpx2":
            async with self.client.sse("/chat/completions", method="POST", json=body) as source:
                source.response.raise_for_status()
                yield source.__aiter__()
        else:
            from httpx_sse import aconnect_sse

            async with aconnect_sse(
                self.client, "POST", "/chat/completions", json=body
            ) as source:
                source.response.raise_for_status()
                yield source.aiter_sse()

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.streamed:
            response = await self.client.post("/chat/completions", json=body)
            response.raise_for_status()
            message: dict[str, Any] = response.json()["choices"][0]["message"]
            return message
        body["stream"] = True
        chunks: list[dict[str, Any]] = []
        done = False
        after_done = 0
        async with self._events(body) as events:
            async for event in events:
                if done:
                    # Read the body to its end, so the connection goes back to the pool:
                    # leaving at [DONE] closes it (a new TCP + TLS handshake next time).
                    after_done += 1
                    if after_done > MAX_EVENTS_AFTER_DONE:
                        break  # bounded: a server that keeps talking loses its connection
                    continue
                if event.data == "[DONE]":
                    done = True
                    continue
                chunks.append(json.loads(event.data))
        if not done:
            raise RuntimeError("stream ended before [DONE]")
        return assemble(chunks)

    async def run(self, prompt: str) -> object:
        return await self._loop([{"role": "user", "content": prompt}], None, trim=False)

    async def open_conversation(
        self, stored: list[dict[str, Any]], *, store: str = "memory", path: str = "",
        instructions: str | None = None, keep_history: bool = True,
    ) -> HandConversation:
        """The loop keeps its history as a list of wire dicts, whatever `store` says: the
        floor of a stored conversation is sending it, not storing it."""
        return HandConversation(list(stored), instructions, keep_history)

    async def run_in(self, conversation: Any, prompt: str) -> object:
        assert isinstance(conversation, HandConversation)
        messages = conversation.messages if conversation.keep else list(conversation.messages)
        messages.append({"role": "user", "content": prompt})
        counts = conversation.counts if conversation.keep else None
        return await self._loop(messages, conversation.system, trim=conversation.keep,
                                counts=counts)

    async def _loop(
        self, messages: list[dict[str, Any]], system: str | None, *, trim: bool,
        counts: dict[int, float] | None = None,
    ) -> object:
        """Ask, run the tools, repeat. `trim`: before each request drop the oldest whole
        turns that no longer fit the window (and forget them), as a simple loop would."""
        for _ in range(MAX_STEPS):
            if trim:
                kept = trim_to_budget(messages, counts=counts)
                if len(kept) != len(messages):
                    if counts is not None:
                        for gone in messages[: len(messages) - len(kept)]:
                            counts.pop(id(gone), None)
                    del messages[: len(messages) - len(kept)]
            sent = [{"role": "system", "content": system}, *messages] if system else messages
            body = {"model": MODEL, "messages": sent, "tools": TOOLS, "max_tokens": MAX_TOKENS}
            message = await self._complete(body)
            calls = message.get("tool_calls")
            if not calls:
                return message.get("content")
            messages.append(assistant_echo(message))
            results = await asyncio.gather(*(run_tool(call) for call in calls))
            messages.extend(
                {"role": "tool", "tool_call_id": call["id"], "content": result}
                for call, result in zip(calls, results, strict=True)
            )
        raise RuntimeError("too many steps")


class HandConversation:
    """The hand-written loop's conversation: its system prompt and its list of messages."""

    def __init__(self, messages: list[dict[str, Any]], system: str | None, keep: bool) -> None:
        self.messages = messages
        self.system = system
        self.keep = keep
        self.counts: dict[int, float] = {}


def make_runner(base_url: str, streamed: bool, variant: str) -> ConversationRunner:
    return HandWritten(base_url, streamed, variant)
