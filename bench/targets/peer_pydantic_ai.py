"""pydantic-ai: `Agent` with `OpenAIChatModel` on an `OpenAIProvider` (its default HTTP client)."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent, AgentRunResultEvent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from bench.targets import ConversationRunner, http_library_of
from bench.work import MODEL, lookup_body


async def lookup(key: str) -> str:
    """Look up the value stored under a key.

    Args:
        key: The key to look up.
    """
    return await lookup_body(key)


class PydanticAIRunner(ConversationRunner):
    def __init__(self, base_url: str, streamed: bool, variant: str) -> None:
        super().__init__(base_url, streamed, variant)
        self.provider: OpenAIProvider | None = None
        self.agent: Agent[None, str] | None = None

    def http_client(self) -> str:
        if self.provider is None:
            return "?"
        return http_library_of(self.provider.client._client)

    async def start(self) -> None:
        self.provider = OpenAIProvider(base_url=self.base_url, api_key="bench-key")
        model = OpenAIChatModel(MODEL, provider=self.provider)
        self.agent = Agent(model, tools=[lookup])

    async def run(self, prompt: str) -> object:
        assert self.agent is not None
        if self.streamed:
            output: Any = None
            async with self.agent.run_stream_events(prompt) as events:
                async for event in events:
                    if isinstance(event, AgentRunResultEvent):
                        output = event.result.output
            return output
        result = await self.agent.run(prompt)
        return result.output


def make_runner(base_url: str, streamed: bool, variant: str) -> ConversationRunner:
    return PydanticAIRunner(base_url, streamed, variant)
