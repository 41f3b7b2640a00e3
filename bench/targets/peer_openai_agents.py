"""openai-agents: `Runner` with an `OpenAIChatCompletionsModel` on `AsyncOpenAI`, tracing off."""

from __future__ import annotations

from typing import Any

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from bench.targets import ConversationRunner, http_library_of
from bench.work import MODEL, lookup_body

set_tracing_disabled(True)


@function_tool
async def lookup(key: str) -> str:
    """Look up the value stored under a key.

    Args:
        key: The key to look up.
    """
    return await lookup_body(key)


class OpenAIAgentsRunner(ConversationRunner):
    def __init__(self, base_url: str, streamed: bool, variant: str) -> None:
        super().__init__(base_url, streamed, variant)
        self.client: AsyncOpenAI | None = None
        self.agent: Any = None

    def http_client(self) -> str:
        return "?" if self.client is None else http_library_of(self.client._client)

    async def start(self) -> None:
        self.client = AsyncOpenAI(base_url=self.base_url, api_key="bench-key", max_retries=0)
        model = OpenAIChatCompletionsModel(model=MODEL, openai_client=self.client)
        self.agent = Agent(name="bench", tools=[lookup], model=model)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def run(self, prompt: str) -> object:
        if self.streamed:
            streaming = Runner.run_streamed(self.agent, prompt)
            async for _event in streaming.stream_events():
                pass
            return streaming.final_output
        result = await Runner.run(self.agent, prompt)
        return result.final_output


def make_runner(base_url: str, streamed: bool, variant: str) -> ConversationRunner:
    return OpenAIAgentsRunner(base_url, streamed, variant)
