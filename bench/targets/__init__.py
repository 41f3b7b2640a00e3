"""The benchmark targets: one module per framework, all doing the work of `bench.work`.

A target module exposes `make_runner(base_url, streamed, variant) -> ConversationRunner`. The
registry below says what each target needs installed and what its import-time figure imports;
the runner process never imports a target itself (each runs in its own worker process).
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import Any, Final, Literal


class Unsupported(Exception):
    """The target cannot run this scenario (a feature it does not have): reported, not failed."""


class ConversationRunner(abc.ABC):
    """One configured target: open it once, run many conversations, close it.

    Besides `run`, the stateful scenarios use a conversation handle: `open_conversation`
    makes one (a session holding `stored` messages, or the list a hand-written loop keeps),
    `run_in` runs one conversation in it, `restore` drops what runs added beyond the first
    `keep` messages (the long-history scenario measures every run on the same stored
    history), `close_conversation` releases it.
    """

    def __init__(self, base_url: str, streamed: bool, variant: str) -> None:
        self.base_url = base_url
        self.streamed = streamed
        self.variant = variant

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open clients; called once before any conversation."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close what `start` opened."""

    @abc.abstractmethod
    async def run(self, prompt: str) -> object:
        """Run one conversation to its end and return the final text."""

    def http_client(self) -> str:
        """Which HTTP client library carries the requests ('httpx', 'httpx2', '?')."""
        return "?"

    async def open_conversation(
        self, stored: list[dict[str, Any]], *, store: str = "memory", path: str = "",
        instructions: str | None = None, keep_history: bool = True,
    ) -> Any:
        """A conversation holding the wire messages `stored`; `store` is 'memory' or
        'sqlite' (a database file at `path`). `keep_history=False`: runs do not add to it."""
        raise Unsupported(f"{type(self).__name__} has no stored conversations")

    async def run_in(self, conversation: Any, prompt: str) -> object:
        raise Unsupported(f"{type(self).__name__} has no stored conversations")

    async def restore(self, conversation: Any, keep: int) -> None:  # noqa: B027
        """Drop the messages runs added after the first `keep`."""

    async def close_conversation(self, conversation: Any) -> None:  # noqa: B027
        """Release what `open_conversation` opened."""


def http_library_of(obj: object) -> str:
    """'httpx' or 'httpx2' when `obj` is (a subclass of) that library's client, else '?'."""
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("httpx", "httpx2"):
            return root
    return "?"


Kind = Literal["framework", "variant", "floor", "peer", "pool"]


@dataclass(frozen=True)
class TargetSpec:
    name: str
    module: str
    variant: str
    kind: Kind
    requires: tuple[str, ...]
    import_code: str
    """Statements timed for the import-time figure (what a user needs to run this target)."""
    scenarios: tuple[str, ...] | None = None
    """Scenario keys this target runs (None: all)."""
    description: str = ""


TARGETS: Final[tuple[TargetSpec, ...]] = (
    TargetSpec(
        name="kimi-agent",
        module="bench.targets.kimi",
        variant="",
        kind="framework",
        requires=("kimi_agent",),
        import_code=(
            "import kimi_agent; kimi_agent.Agent; kimi_agent.GatewayClient; kimi_agent.tool"
        ),
        description="kimi_agent.Agent on kimi_agent.GatewayClient",
    ),
    TargetSpec(
        name="httpx",
        module="bench.targets.handwritten",
        variant="httpx",
        kind="floor",
        requires=("httpx", "httpx_sse"),
        import_code="import json, asyncio, httpx, httpx_sse",
        description="hand-written loop, httpx 0.28 AsyncClient with default Limits, httpx-sse",
    ),
    TargetSpec(
        name="httpx2",
        module="bench.targets.handwritten",
        variant="httpx2",
        kind="floor",
        requires=("httpx2",),
        import_code="import json, asyncio, httpx2",
        description="the same loop on httpx2 AsyncClient (default Limits), httpx2.EventSource",
    ),
    TargetSpec(
        name="openai-agents",
        module="bench.targets.peer_openai_agents",
        variant="",
        kind="peer",
        requires=("agents", "openai"),
        import_code="import agents, openai",
        description="openai-agents Runner + OpenAIChatCompletionsModel(AsyncOpenAI), tracing off",
    ),
    TargetSpec(
        name="pydantic-ai",
        module="bench.targets.peer_pydantic_ai",
        variant="",
        kind="peer",
        requires=("pydantic_ai", "openai"),
        import_code=(
            "import pydantic_ai; from pydantic_ai.models.openai import OpenAIChatModel; "
            "from pydantic_ai.providers.openai import OpenAIProvider"
        ),
        description="pydantic-ai Agent + OpenAIChatModel(OpenAIProvider)",
    ),
)

POOL_LIMITS: Final = ("20/20", "200/200")
"""Connection-pool limits (max_connections/max_keepalive) tried besides the default 100/20."""

POOL_VARIANTS: Final[tuple[TargetSpec, ...]] = tuple(
    TargetSpec(
        name=f"{library}:{limits}",
        module="bench.targets.handwritten",
        variant=f"{library}:{limits}",
        kind="pool",
        requires=("httpx", "httpx_sse") if library == "httpx" else ("httpx2",),
        import_code=f"import json, asyncio, {library}",
        scenarios=("c200",),
        description=f"hand-written loop on {library}, Limits({limits.replace('/', ', ')})",
    )
    for library in ("httpx", "httpx2")
    for limits in POOL_LIMITS
)

VARIANTS: Final[tuple[TargetSpec, ...]] = (
    TargetSpec(
        name="kimi-agent[read_only]",
        module="bench.targets.kimi",
        variant="early",
        kind="variant",
        requires=("kimi_agent",),
        import_code="import kimi_agent",
        scenarios=("early",),
        description="kimi-agent with its tool marked @tool(read_only=True) (early start)",
    ),
)

ALL_TARGETS: Final = TARGETS + VARIANTS + POOL_VARIANTS
TARGETS_BY_NAME: Final = {t.name: t for t in ALL_TARGETS}


def load_runner(spec: TargetSpec, base_url: str, streamed: bool) -> ConversationRunner:
    module = importlib.import_module(spec.module)
    runner = module.make_runner(base_url, streamed, spec.variant)
    assert isinstance(runner, ConversationRunner)
    return runner
