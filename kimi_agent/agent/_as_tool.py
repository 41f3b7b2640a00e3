"""`agent.as_tool()`: another agent as one tool call.

The calling model passes a request; the agent runs it as its own run (its own model calls,
tools and instructions, no session: it starts fresh each call), its usage is added to the
caller's run, and on a streamed run its events reach the caller's stream wrapped in
`AgentToolEvent`. Its answer (JSON for structured output) is the tool's result.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from kimi_agent.agent import _events as ev
from kimi_agent.tooling._run_context import RunContext
from kimi_agent.tooling._tool import Tool
from kimi_agent.wire import dumps

if TYPE_CHECKING:
    from kimi_agent.agent._agent import Agent

_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")


def agent_tool(agent: Agent[Any, Any], name: str | None, description: str | None) -> Tool:
    tool_name = name or _NAME_RE.sub("_", agent.name)[:64]
    text = description or agent.description or f"请「{agent.name}」处理一个请求。Ask the " \
        f"{agent.name} agent to handle a request."

    async def run_agent(ctx: RunContext[Any], request: str) -> str:
        sink = ctx.signals.events
        if sink is None:
            result = await agent.run(request, deps=ctx.deps)
        else:
            async with agent.stream(request, deps=ctx.deps) as run:
                async for event in run:
                    await sink(ev.AgentToolEvent(ctx.step, ctx.tool_call_id or "",
                                                 agent.name, event))
            result = run.result
        usage = ctx.usage
        usage += result.usage
        output = result.output
        return output if isinstance(output, str) else dumps(to_jsonable_python(output))

    return Tool.from_schema(
        tool_name, text,
        {"type": "object", "properties": {"request": {
            "type": "string", "description": "要交给该助手处理的请求 The request for the agent"}},
         "required": ["request"]},
        run_agent)
