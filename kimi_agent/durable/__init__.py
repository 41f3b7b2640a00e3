"""Durable runs and workflows on DBOS (the `durable` extra: `pip install kimi-agent[durable]`).

- `DurableAgent(agent)`: each run is a DBOS workflow; every model call and tool execution a
  checkpointed step, so a crashed run resumes without paying for a model call twice or
  repeating a completed side effect; approvals wait durably and can come from another
  process hours later.
- `Workflow`: scripted multi-step work (agent steps with structured output, plain steps with
  retry policies, human approvals) on the same engine.
- `RunQueue`: a queue of runs with a concurrency and a rate limit shared by all workers.
- `launch(url)` / `shutdown()`: the engine in this process (SQLite by default, PostgreSQL
  for several workers).

Nothing here is imported by the rest of kimi_agent; names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kimi_agent.durable._agent import DurableAgent, DurableRun, DurableRunResult
    from kimi_agent.durable._engine import default_database_url, launch, shutdown
    from kimi_agent.durable._errors import (
        DurableConfigurationError,
        DurableError,
        StepRetriesExhaustedError,
        WorkflowFailedError,
    )
    from kimi_agent.durable._queue import RunQueue
    from kimi_agent.durable._workflow import Approval, Flow, RetryPolicy, Workflow

__all__ = [
    "Approval",
    "DurableAgent",
    "DurableConfigurationError",
    "DurableError",
    "DurableRun",
    "DurableRunResult",
    "Flow",
    "RetryPolicy",
    "RunQueue",
    "StepRetriesExhaustedError",
    "Workflow",
    "WorkflowFailedError",
    "default_database_url",
    "launch",
    "shutdown",
]

_WHERE = {
    "DurableAgent": "_agent", "DurableRun": "_agent", "DurableRunResult": "_agent",
    "default_database_url": "_engine", "launch": "_engine", "shutdown": "_engine",
    "DurableConfigurationError": "_errors", "DurableError": "_errors",
    "StepRetriesExhaustedError": "_errors", "WorkflowFailedError": "_errors",
    "RunQueue": "_queue",
    "Approval": "_workflow", "Flow": "_workflow", "RetryPolicy": "_workflow",
    "Workflow": "_workflow",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_agent.durable' has no attribute {name!r}")
    value = getattr(import_module(f"kimi_agent.durable.{module}"), name)
    globals()[name] = value
    return value
