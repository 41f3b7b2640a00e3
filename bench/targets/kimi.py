"""kimi-agent: `Agent` on a borrowed `GatewayClient`, the public API (docs/reference/agent.md)."""

from __future__ import annotations

import gc
from contextlib import AsyncExitStack
from typing import Any

from bench.targets import ConversationRunner
from bench.work import MODEL, lookup_body
from kimi_agent import Agent, GatewayClient, tool


@tool
async def lookup(key: str) -> str:
    """Look up the value stored under a key.

    Args:
        key: The key to look up.
    """
    return await lookup_body(key)


class KimiAgentRunner(ConversationRunner):
    def __init__(self, base_url: str, streamed: bool, variant: str) -> None:
        super().__init__(base_url, streamed, variant)
        self.stack = AsyncExitStack()
        self.agent: Any = None
        self.client: Any = None

    async def start(self) -> None:
        client = GatewayClient(base_url=self.base_url, api_key="bench-key")
        self.client = await self.stack.enter_async_context(client)
        if self.client is None:  # an __aenter__ that returns None: keep the instance
            self.client = client
        self.agent = Agent(model=MODEL, fallback=None, tools=[lookup], client=client)

    async def close(self) -> None:
        await self.stack.aclose()

    async def run(self, prompt: str) -> object:
        if self.streamed:
            async with self.agent.stream(prompt) as run:
                async for _event in run:
                    pass
            return run.result.output
        result = await self.agent.run(prompt)
        return result.output

    def http_client(self) -> str:
        """The library of the AsyncClient instance(s) kimi-agent created."""
        libraries = {
            type(obj).__module__.split(".")[0]
            for obj in gc.get_objects()
            if type(obj).__name__ == "AsyncClient"
            and type(obj).__module__.split(".")[0] in ("httpx", "httpx2")
        }
        if len(libraries) == 1:
            return libraries.pop()
        return "+".join(sorted(libraries)) or "?"


def make_runner(base_url: str, streamed: bool, variant: str) -> ConversationRunner:
    return KimiAgentRunner(base_url, streamed, variant)
