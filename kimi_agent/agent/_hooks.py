"""Hooks around the boxes of a run: the run itself, each model call, each tool execution.

Tracing and durable execution observe (or replay) a run without the loop, the router or the
executor knowing about them: the loop calls `proceed` through the hooks when there are any,
and directly otherwise, so a run without hooks pays nothing. Each hook receives a small,
read-only description of the call and a `proceed` function; it returns what `proceed`
returns (possibly a stored copy, when replaying a checkpointed run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kimi_agent.agent._result import RunResult
    from kimi_agent.models._profiles import ModelProfile
    from kimi_agent.tooling._run_context import RunContext
    from kimi_agent.tooling._tool import Tool
    from kimi_agent.wire import ChatCompletion

__all__ = ["ModelCall", "ModelReply", "RunHooks", "RunInfo", "ToolExecution",
           "add_global_hooks", "around_tool", "chain_hooks", "remove_global_hooks", "run_hooks"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run: its id, the agent's name, the session id (None without a session), and
    whether it is a fresh run or the resume of an approved step."""

    run_id: str
    agent_name: str
    session_id: str | None
    kind: str  # "run" | "resume"
    streamed: bool


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One model call of a run (before routing): step number, the primary model and the
    requested output budget."""

    run_id: str
    step: int
    primary: str
    streamed: bool
    max_tokens: int | None
    server: str = ""
    """The gateway's base URL."""


ModelReply = tuple["ChatCompletion", "ModelProfile", "str | None"]
"""The reply, the model that gave it, and why that model (None when the primary answered)."""


@dataclass(frozen=True, slots=True)
class ToolExecution:
    """One execution of a tool (after its arguments were validated and approved)."""

    ctx: RunContext[Any]
    tool: Tool
    arguments: dict[str, Any]

    @property
    def call_id(self) -> str:
        return self.ctx.tool_call_id or ""


class RunHooks:
    """Base class of hooks: every method passes straight through. Override what you need."""

    async def on_run(self, info: RunInfo,
                     proceed: Callable[[], Awaitable[RunResult[Any]]]) -> RunResult[Any]:
        return await proceed()

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        return await proceed()

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        return await proceed()

    def on_model_event(self, call: ModelCall, name: str, attributes: dict[str, Any]) -> None:
        """Something happened inside a model call (e.g. "fallback", with its reason)."""


class _Chain(RunHooks):
    """Several hooks, the first outermost."""

    def __init__(self, hooks: Sequence[RunHooks]) -> None:
        self.hooks = tuple(hooks)

    async def on_run(self, info: RunInfo,
                     proceed: Callable[[], Awaitable[RunResult[Any]]]) -> RunResult[Any]:
        for hook in reversed(self.hooks):
            proceed = _bind(hook.on_run, info, proceed)
        return await proceed()

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        for hook in reversed(self.hooks):
            proceed = _bind(hook.on_model_call, call, proceed)
        return await proceed()

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        for hook in reversed(self.hooks):
            proceed = _bind(hook.on_tool, execution, proceed)
        return await proceed()

    def on_model_event(self, call: ModelCall, name: str, attributes: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook.on_model_event(call, name, attributes)


def _bind(method: Callable[[Any, Callable[[], Awaitable[Any]]], Awaitable[Any]], info: Any,
          inner: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def proceed() -> Any:
        return await method(info, inner)
    return proceed


def chain_hooks(hooks: Sequence[RunHooks | None]) -> RunHooks | None:
    """One hooks object for several (None for none), so the loop checks one attribute."""
    present = [h for h in hooks if h is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else _Chain(present)


_GLOBAL: list[RunHooks] = []
"""Hooks every agent's runs go through (`kimi_agent.instrument()` adds its own here)."""


def add_global_hooks(hooks: RunHooks) -> None:
    """Make every run of every agent go through `hooks` (from its next run on)."""
    if hooks not in _GLOBAL:
        _GLOBAL.append(hooks)


def remove_global_hooks(hooks: RunHooks) -> None:
    if hooks in _GLOBAL:
        _GLOBAL.remove(hooks)


def run_hooks(agent_hooks: RunHooks | None) -> RunHooks | None:
    """The hooks of one run: the agent's own, then the global ones (None without any, the
    common case: one list check)."""
    if not _GLOBAL:
        return agent_hooks
    return chain_hooks([agent_hooks, *_GLOBAL])


def around_tool(hooks: RunHooks | None) -> Any:
    """The executor's wrapper of each tool execution for `hooks` (None without hooks)."""
    if hooks is None:
        return None

    def around(ctx: RunContext[Any], tool: Tool, arguments: dict[str, Any],
               proceed: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return hooks.on_tool(ToolExecution(ctx, tool, arguments), proceed)
    return around
