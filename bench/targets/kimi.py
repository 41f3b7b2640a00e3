"""kimi-agent: `Agent` on a borrowed `GatewayClient`, the public API (docs/reference/agent.md).

Only stable import paths are used (`kimi_agent` top-level names and `kimi_agent.wire`), so the
target measures whatever the current kimi-agent does. Variant `early` marks the tool
`@tool(read_only=True)` (safe to start while the reply is still streaming); a kimi-agent
without that option raises `Unsupported` and the scenario reports "not available".
"""

from __future__ import annotations

import gc
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from bench.targets import ConversationRunner, Unsupported
from bench.work import MODEL, lookup_body
from kimi_agent import Agent, GatewayClient, MemorySession, SQLiteStore, tool


async def _lookup(key: str) -> str:
    """Look up the value stored under a key.

    Args:
        key: The key to look up.
    """
    return await lookup_body(key)


lookup = tool(_lookup, name="lookup")


def early_lookup() -> Any:
    """`lookup` marked safe to start early, or `Unsupported` if kimi-agent has no such mark."""
    try:
        return tool(name="lookup", read_only=True)(_lookup)  # type: ignore[call-arg]
    except TypeError as exc:
        raise Unsupported(f"@tool(read_only=True) is not available: {exc}") from None


@dataclass
class Conversation:
    agent: Any
    session: Any
    store: Any = None


class KimiAgentRunner(ConversationRunner):
    def __init__(self, base_url: str, streamed: bool, variant: str) -> None:
        super().__init__(base_url, streamed, variant)
        self.stack = AsyncExitStack()
        self.agent: Any = None
        self.client: Any = None
        self.tool: Any = lookup

    async def start(self) -> None:
        if self.variant == "early":
            self.tool = early_lookup()
        client = GatewayClient(base_url=self.base_url, api_key="bench-key")
        self.client = await self.stack.enter_async_context(client)
        if self.client is None:  # an __aenter__ that returns None: keep the instance
            self.client = client
        self.agent = self._agent(None)

    def _agent(self, instructions: str | None) -> Any:
        return Agent(model=MODEL, fallback=None, tools=[self.tool], client=self.client,
                     instructions=instructions)

    async def close(self) -> None:
        await self.stack.aclose()

    async def _run(self, agent: Any, prompt: str, session: Any = None) -> object:
        if self.streamed:
            async with agent.stream(prompt, session=session) as run:
                async for _event in run:
                    pass
            return run.result.output
        result = await agent.run(prompt, session=session)
        return result.output

    async def run(self, prompt: str) -> object:
        return await self._run(self.agent, prompt)

    async def open_conversation(
        self, stored: list[dict[str, Any]], *, store: str = "memory", path: str = "",
        instructions: str | None = None, keep_history: bool = True,
    ) -> Conversation:
        from kimi_agent.wire import parse_messages

        messages = parse_messages(stored)
        agent = self.agent if instructions is None else self._agent(instructions)
        session_id = f"bench-{uuid.uuid4().hex[:8]}"
        if store == "sqlite":
            sqlite = SQLiteStore(path)
            session = sqlite.session(session_id)
            if messages:
                await session.add_items(messages)
            return Conversation(agent, session, sqlite)
        return Conversation(agent, MemorySession(session_id, items=messages))

    async def run_in(self, conversation: Any, prompt: str) -> object:
        return await self._run(conversation.agent, prompt, conversation.session)

    async def restore(self, conversation: Any, keep: int) -> None:
        """Pop what the last run added: everything down to and including its user message."""
        from kimi_agent.wire import UserMessage

        for _ in range(1000):
            item = await conversation.session.pop_item()
            if item is None or isinstance(item, UserMessage):
                return

    async def close_conversation(self, conversation: Any) -> None:
        if conversation.store is not None:
            await conversation.store.aclose()

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
