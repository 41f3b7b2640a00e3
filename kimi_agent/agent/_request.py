"""The fixed parts of every request of an agent: the system prompt and the tool schemas.

Both are computed once (the system prompt once per model, since the output schema goes into
the instructions for a model without structured output) and reused byte for byte, so the
prompt prefix stays stable for Kimi's automatic prompt caching.
"""

from __future__ import annotations

from typing import Any

from kimi_agent._tokens import estimate_tools, estimate_wire_message
from kimi_agent.agent._output import OutputSpec
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.tooling._tool import ToolRegistry
from kimi_agent.wire import SystemMessage


class RequestParts:
    """The system message per model and the tools array, each with its token estimate."""

    def __init__(self, instructions: str | None, output: OutputSpec[Any] | None,
                 registry: ToolRegistry) -> None:
        self.instructions = instructions
        self.output = output
        self.registry = registry
        self._system: dict[str, tuple[dict[str, Any] | None, int]] = {}
        self._tools_cache: tuple[int, list[dict[str, Any]] | None, int] = (-1, None, 0)

    def system_prompt(self, profile: ModelProfile) -> tuple[dict[str, Any] | None, int]:
        """The system message for `profile` (with the output schema where the model needs
        it in the instructions) and its token estimate; computed once per model."""
        cached = self._system.get(profile.name)
        if cached is None:
            parts = [self.instructions] if self.instructions else []
            if self.output is not None and self.output.needs_instructions(profile):
                parts.append(self.output.instructions)
            if parts:
                wire = SystemMessage(content="\n\n".join(parts)).to_wire()
                cached = (wire, estimate_wire_message(wire))
            else:
                cached = (None, 0)
            self._system[profile.name] = cached
        return cached

    def tools(self) -> tuple[list[dict[str, Any]] | None, int]:
        """The `tools` array (None when there are none) and its token estimate; recomputed
        only when the registry's schema list changes."""
        schemas = self.registry.schemas() if len(self.registry) else None
        key = id(schemas)
        if self._tools_cache[0] != key:
            self._tools_cache = (key, schemas, estimate_tools(schemas))
        return self._tools_cache[1], self._tools_cache[2]
