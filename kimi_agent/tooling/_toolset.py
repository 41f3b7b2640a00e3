"""`Toolset`: a source of tools whose list lives elsewhere and may change (e.g. an MCP server).

A toolset goes in `Agent(tools=[...])` beside `Tool`s and `ToolRegistry`s. The registry asks
each toolset for its current tools (`await toolset.tools()`) at the start of a run and of a
`resume`; a toolset returns the *same* `Tool` objects while nothing changed, so the request's
`tools` array stays byte-identical (and the prompt prefix cacheable). `changes` is a counter
that grows when the toolset learns that its list changed; `async with toolset:` opens and
closes whatever the toolset holds (a connection, a process), and `async with agent:` does it
for every toolset of the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kimi_agent._logging import EventLogger
    from kimi_agent.tooling._tool import Tool

__all__ = ["Toolset", "warn_skipped"]


@runtime_checkable
class Toolset(Protocol):
    """What the registry needs of a dynamic source of tools."""

    @property
    def changes(self) -> int:
        """Grows each time the toolset learns its tool list changed (0 at first)."""
        ...

    async def tools(self) -> Sequence[Tool]:
        """The current tools, connecting first if needed; the same objects while unchanged.

        Raises whatever typed error (a `KimiAgentError`) the toolset uses when it cannot
        reach its source.
        """
        ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> Any: ...


def warn_skipped(source: object, name: str, reason: str, logger: EventLogger | None = None
                 ) -> None:
    """Log that a tool of `source` was left out, naming it and why (never silently).

    Goes to `logger`, else to kimi-agent's configured logger, else to the standard `logging`
    module (logger "kimi_agent"), so a missing tool can always be explained.
    """
    from kimi_agent._logging import resolve  # structlog only when a tool is skipped

    log = resolve(logger)
    if log is not None:
        log.warning("tool_skipped", source=repr(source), tool=name, reason=reason)
    else:
        logging.getLogger("kimi_agent").warning("tool %r of %r left out: %s", name, source,
                                                reason)
