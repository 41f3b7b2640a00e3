"""One run as the soak and the kill loop make it, classified: completed, cancelled (by us),
a typed error, or an untyped one (anything that is not a `KimiAgentError`, an
`ExceptionGroup`, a `ModelFailedError` whose cause is not a `GatewayError`, or a
`CancelledError` nobody asked for)."""

from __future__ import annotations

import math
from typing import Any

import anyio

from kimi_agent import Agent, KimiAgentError, ModelFailedError
from kimi_agent.errors import GatewayError
from kimi_agent.sessions import Session

__all__ = ["NOT_STARTED", "one_run"]

NOT_STARTED = frozenset({"ConversationBusyError", "ApprovalError"})
"""Typed errors raised before the run stored the user's message (so it is not kept)."""


async def one_run(agent: Agent[Any], session: Session, prompt: str, *, streamed: bool,
                  cancel_after: float | None) -> tuple[str, str]:
    """Run `prompt` and say how it ended: ("completed" | "cancelled" | "typed" | "untyped",
    detail), the detail being the error's class (typed) or its repr (untyped)."""
    try:
        with anyio.move_on_after(math.inf if cancel_after is None else cancel_after) as scope:
            if streamed:
                async with agent.stream(prompt, session=session) as run:
                    async for _ in run:
                        pass
                    status = run.result.status
            else:
                status = (await agent.run(prompt, session=session)).status
        if scope.cancelled_caught:
            return "cancelled", ""
        if status != "completed":
            return "untyped", f"run ended with status {status!r}"
        return "completed", ""
    except KimiAgentError as error:
        if isinstance(error, ModelFailedError) and not isinstance(error.cause, GatewayError):
            return "untyped", f"ModelFailedError with cause {error.cause!r}"
        return "typed", type(error).__name__
    except Exception as error:
        return "untyped", repr(error)[:300]
    except anyio.get_cancelled_exc_class() as error:
        return "untyped", f"stray {error!r}"[:300]
