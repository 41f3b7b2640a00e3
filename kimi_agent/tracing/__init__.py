"""Observability: OpenTelemetry GenAI traces and metrics, and a plain trace summary.

```python
import kimi_agent
kimi_agent.instrument()                         # every agent, with the app's providers
agent = Agent(..., hooks=[Instrumentation(record_content=True)])   # or one agent
```

Spans follow the OpenTelemetry GenAI semantic conventions: `invoke_agent {name}` per run,
`chat {model}` per model call, `execute_tool {name}` per tool execution, all children of the
run span (parallel tools overlap; kimi-k2-5's run one after another); metrics
`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`, and counters of fallbacks and
tool calls by outcome. Message content, tool arguments and results are recorded only with
`record_content=True`; the API key never. Needs the `otel` extra (`opentelemetry-api`); without
it, or until enabled, nothing here is imported and a run pays nothing.

`TraceSummary` records a run's tree without OpenTelemetry (for `--trace` in the demo and
`kimi-agent chat`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kimi_agent.tracing._otel import Instrumentation
    from kimi_agent.tracing._summary import TraceSummary

__all__ = ["Instrumentation", "TraceSummary", "instrument", "uninstrument"]

_installed: list[Any] = []


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None,
               record_content: bool = False) -> Instrumentation:
    """Trace every agent's runs from now on, with the application's (or the given)
    OpenTelemetry tracer and meter providers; returns the installed `Instrumentation`.
    Calling it again replaces the previous one.

    Raises:
        ImportError: the `otel` extra (`opentelemetry-api`) is not installed.
    """
    from kimi_agent.agent._hooks import add_global_hooks
    from kimi_agent.tracing._otel import Instrumentation

    uninstrument()
    hooks = Instrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider,
                            record_content=record_content)
    add_global_hooks(hooks)
    _installed.append(hooks)
    return hooks


def uninstrument() -> None:
    """Stop tracing the runs `instrument()` made every agent trace."""
    from kimi_agent.agent._hooks import remove_global_hooks

    while _installed:
        remove_global_hooks(_installed.pop())


def __getattr__(name: str) -> Any:
    if name == "Instrumentation":
        from kimi_agent.tracing._otel import Instrumentation
        return Instrumentation
    if name == "TraceSummary":
        from kimi_agent.tracing._summary import TraceSummary
        return TraceSummary
    raise AttributeError(f"module 'kimi_agent.tracing' has no attribute {name!r}")
