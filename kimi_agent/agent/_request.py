"""The fixed parts of every request of an agent: the system prompt and the tool schemas.

Both are computed once (the system prompt once per model, since the output schema goes into
the instructions for a model without structured output) and reused byte for byte, so the
prompt prefix stays stable for Kimi's automatic prompt caching.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from kimi_agent._tokens import estimate_tools, estimate_wire_message
from kimi_agent.agent._output import OutputSpec
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.wire import SystemMessage

Instructions = str | Callable[[RunContext[Any]], str | Awaitable[str]] | None
"""Static instructions, or a function of the run's context (sync or async) evaluated once at
the start of each run — e.g. the customer's name, tier and language."""

_MAX_CACHED = 256
"""System messages kept per agent (per model × instructions text), oldest dropped first."""


class RequestParts:
    """The system message per model and the tools array, each with its token estimate."""

    def __init__(self, instructions: Instructions, output: OutputSpec[Any] | None,
                 registry: ToolRegistry) -> None:
        self.instructions = instructions
        self.output = output
        self.registry = registry
        self._system: dict[tuple[str, str | None], tuple[dict[str, Any] | None, int]] = {}
        self._tools_cache: tuple[int, list[dict[str, Any]] | None, int] = (-1, None, 0)

    @property
    def dynamic(self) -> bool:
        return callable(self.instructions)

    async def resolve(self, ctx: RunContext[Any]) -> str | None:
        """The instructions text of one run (a dynamic one evaluated now, once).

        Raises:
            TypeError: a dynamic instructions function returned something else than a str.
        """
        if not callable(self.instructions):
            return self.instructions
        text = self.instructions(ctx)
        if inspect.isawaitable(text):
            text = await text
        if text is not None and not isinstance(text, str):
            raise TypeError(f"the instructions function returned {type(text).__name__}, "
                            "not a str")
        return text

    def system_prompt(self, profile: ModelProfile, text: str | None = None
                      ) -> tuple[dict[str, Any] | None, int]:
        """The system message for `profile` (with the output schema where the model needs
        it in the instructions) and its token estimate; computed once per model and
        instructions text, so it is byte-identical on every call of a run."""
        if not callable(self.instructions):
            text = self.instructions
        key = (profile.name, text)
        cached = self._system.get(key)
        if cached is None:
            parts = [text] if text else []
            if self.output is not None and self.output.needs_instructions(profile):
                parts.append(self.output.instructions)
            if parts:
                wire = SystemMessage(content="\n\n".join(parts)).to_wire()
                cached = (wire, estimate_wire_message(wire))
            else:
                cached = (None, 0)
            if len(self._system) >= _MAX_CACHED:
                del self._system[next(iter(self._system))]
            self._system[key] = cached
        return cached

    def tools(self) -> tuple[list[dict[str, Any]] | None, int]:
        """The `tools` array (None when there are none) and its token estimate; recomputed
        only when the registry's schema list changes."""
        schemas = self.registry.schemas() if len(self.registry) else None
        key = id(schemas)
        if self._tools_cache[0] != key:
            self._tools_cache = (key, schemas, estimate_tools(schemas))
        return self._tools_cache[1], self._tools_cache[2]
