"""The benchmark targets: one module per framework, all doing the work of `bench.work`.

A target module exposes `make_runner(base_url, streamed, variant) -> ConversationRunner`. The
registry below says what each target needs installed and what its import-time figure imports;
the runner process never imports a target itself (each runs in its own worker process).
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import Final, Literal


class ConversationRunner(abc.ABC):
    """One configured target: open it once, run many conversations, close it."""

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


def http_library_of(obj: object) -> str:
    """'httpx' or 'httpx2' when `obj` is (a subclass of) that library's client, else '?'."""
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("httpx", "httpx2"):
            return root
    return "?"


Kind = Literal["framework", "floor", "peer", "pool"]


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

ALL_TARGETS: Final = TARGETS + POOL_VARIANTS
TARGETS_BY_NAME: Final = {t.name: t for t in ALL_TARGETS}


def load_runner(spec: TargetSpec, base_url: str, streamed: bool) -> ConversationRunner:
    module = importlib.import_module(spec.module)
    runner = module.make_runner(base_url, streamed, spec.variant)
    assert isinstance(runner, ConversationRunner)
    return runner
