"""The agent and its loop: ask the model, run its tools, feed the results back, repeat.

`Agent` holds configuration only; one run's state lives in the internal run loop and in the
session. `RunResult` is what a run leaves behind, with a `StepRecord` per step; the events of a
streamed run are in `kimi_agent.events`.
"""

from __future__ import annotations

from kimi_agent._usage import RunUsage, UsageLimits
from kimi_agent.agent._agent import Agent, AgentStream
from kimi_agent.agent._guardrails import GuardrailResult
from kimi_agent.agent._handoffs import AgentHandoff, remove_tool_history
from kimi_agent.agent._hooks import ModelCall, ModelReply, RunHooks, RunInfo, ToolExecution
from kimi_agent.agent._result import (
    PendingApproval,
    RunResult,
    RunStatus,
    StepRecord,
    ToolCallRecord,
)

__all__ = ["Agent", "AgentHandoff", "AgentStream", "GuardrailResult", "ModelCall", "ModelReply",
           "PendingApproval", "RunHooks", "RunInfo", "RunResult", "RunStatus", "RunUsage",
           "StepRecord", "ToolCallRecord", "ToolExecution", "UsageLimits", "remove_tool_history"]
