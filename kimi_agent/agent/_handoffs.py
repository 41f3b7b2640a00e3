"""Hand-offs between agents: `Agent(handoffs=[billing, refunds])`.

Each target gives the model a `transfer_to_{name}` tool (described by the target's
`description`). When the model calls it, the run goes on with the target's instructions and
tools on the same session; the session remembers which agent holds the conversation, so the
next user message goes to that agent until it hands back (a target that lists the first agent
in its own `handoffs` can). An `input_filter` decides what history the target sees (the
stored history is never changed). A hand-off to a person (`ctx.handoff(...)`, e.g. the
`handoff_to_human` tool) works from any agent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kimi_agent.errors import ConfigurationError
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._tool import Tool
from kimi_agent.wire import AssistantMessage, Message, ToolMessage

if TYPE_CHECKING:
    from kimi_agent.agent._agent import Agent

__all__ = ["ACTIVE_AGENT_KEY", "AgentHandoff", "InputFilter", "handoff_tool",
           "remove_tool_history"]

ACTIVE_AGENT_KEY = "kimi_agent.active_agent"
"""Session state: {"agent": name, "via": name of the agent that handed over}."""

InputFilter = Callable[[list[Message]], list[Message]]
_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class AgentHandoff:
    """A hand-off target with options: the agent, the tool's name and description, and the
    filter of the history it sees."""

    agent: Agent[Any, Any]
    tool_name: str | None = None
    description: str | None = None
    input_filter: InputFilter | None = None

    @property
    def name(self) -> str:
        return self.tool_name or f"transfer_to_{_NAME_RE.sub('_', self.agent.name)}"[:64]


def as_handoffs(targets: Sequence[Any]) -> list[AgentHandoff]:
    """`Agent(handoffs=...)` items as `AgentHandoff`s.

    Raises:
        ConfigurationError: an item is neither an agent nor an `AgentHandoff`, or two
            targets share a name.
    """
    from kimi_agent.agent._agent import Agent

    out: list[AgentHandoff] = []
    for target in targets:
        if isinstance(target, Agent):
            target = AgentHandoff(target)
        if not isinstance(target, AgentHandoff):
            raise ConfigurationError(
                f"handoffs takes agents or AgentHandoff objects, not {type(target).__name__}")
        out.append(target)
    names = [t.agent.name for t in out]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"hand-off targets need distinct agent names, got {names}")
    return out


def handoff_tool(target: AgentHandoff) -> Tool:
    """The `transfer_to_{name}` tool of one target."""
    agent_name = target.agent.name
    description = target.description or target.agent.description or (
        f"把对话转给「{agent_name}」处理。Hand the conversation to the {agent_name} agent.")

    def transfer(ctx: RunContext[Any], reason: str = "") -> str:
        ctx.signals.transfer = agent_name
        return f"已转接给「{agent_name}」。Transferred to {agent_name}." + (
            f" ({reason})" if reason else "")

    return Tool.from_schema(
        target.name, description,
        {"type": "object", "properties": {"reason": {
            "type": "string", "description": "转接原因 Why the conversation is handed over"}}},
        transfer)


def remove_tool_history(messages: list[Message]) -> list[Message]:
    """An input filter: the target sees the conversation's text but not earlier tool steps
    (assistant tool-call messages and their results are left out)."""
    return [m for m in messages
            if not isinstance(m, ToolMessage)
            and not (isinstance(m, AssistantMessage) and m.tool_calls)]
