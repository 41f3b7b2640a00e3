"""The hooks that make each model call and each tool execution of a run a DBOS step.

Inside a DBOS workflow, a model call's reply is checkpointed as JSON (the completion, the
model that gave it and why), so a recovered workflow reads it back instead of calling the
gateway again (the gateway bills every 2xx). A tool execution's value is checkpointed the
same way, so a completed side effect never happens twice. Step names carry the step number
and the call id; DBOS checks them on replay, so a run that took another path fails loudly
instead of reading another call's checkpoint. Outside a workflow the hooks pass through.

The loop starts the parallel calls of a k2-6 reply in call order, so their steps get their
ids in a deterministic order; a k2-5 reply runs its calls one by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dbos import DBOS

from kimi_agent.agent._hooks import ModelCall, ModelReply, RunHooks, ToolExecution
from kimi_agent.models._profiles import ModelProfile
from kimi_agent.wire import ChatCompletion

__all__ = ["DurableSteps", "in_workflow"]


def in_workflow() -> bool:
    """Whether the caller runs inside a DBOS workflow (and not inside one of its steps)."""
    try:
        return DBOS.workflow_id is not None and DBOS.step_id is None
    except Exception:  # DBOS not launched, or no context at all
        return False


class DurableSteps(RunHooks):
    """Model calls and tool executions as DBOS steps (installed by `DurableAgent`)."""

    def __init__(self, profile: Callable[[str], ModelProfile]) -> None:
        self._profile = profile

    async def on_model_call(self, call: ModelCall,
                            proceed: Callable[[], Awaitable[ModelReply]]) -> ModelReply:
        if not in_workflow():
            return await proceed()

        async def model_step() -> dict[str, Any]:
            completion, profile, reason = await proceed()
            return {"completion": completion.model_dump(mode="json"), "model": profile.name,
                    "reason": reason}

        saved = await DBOS.run_step_async({"name": f"model:{call.step}"}, model_step)
        return (ChatCompletion.model_validate(saved["completion"]),
                self._profile(saved["model"]), saved["reason"])

    async def on_tool(self, execution: ToolExecution,
                      proceed: Callable[[], Awaitable[Any]]) -> Any:
        if not in_workflow():
            return await proceed()
        name = f"tool:{execution.ctx.step}:{execution.call_id}:{execution.tool.name}"

        async def tool_step() -> Any:
            return await proceed()

        return await DBOS.run_step_async({"name": name}, tool_step)
