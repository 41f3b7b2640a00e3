"""The work every target does, identical for all of them.

One conversation: the user asks for the values of four keys → the model answers with four
parallel calls of `lookup` → the four tools run (each waits `ToolGate.wait` seconds, or blocks
on `ToolGate.event` in the memory scenario) → their results go back → the model answers with a
text quoting every `<tool_call_id>=<result>` it received. `verify()` checks that text, so a
target that skipped a tool, lost a result or mangled an id fails the run.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

MODEL: Final = "kimi-k2-6"
TOOL_NAME: Final = "lookup"
TOOL_DESCRIPTION: Final = "Look up the value stored under a key."
CALLS_PER_CONVERSATION: Final = 4
MAX_TOKENS: Final = 1024

TOOLS: Final[list[dict[str, Any]]] = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": TOOL_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {"key": {"type": "string", "description": "The key to look up."}},
                "required": ["key"],
            },
        },
    }
]


def prompt_for(base: str) -> str:
    """The user's message of one conversation; the gateway derives the keys from its last word."""
    return f"Please look up the four values for {base}"


def call_id(index: int) -> str:
    """Kimi-style opaque tool-call id, as the fake gateway issues them."""
    return f"{TOOL_NAME}:{index}"


def key_for(base: str, index: int) -> str:
    return f"{base}.{index}"


def result_for(key: str) -> str:
    """What the `lookup` tool returns for a key."""
    return f"v-{key}"


def expected_fragments(base: str) -> list[str]:
    return [
        f"{call_id(i)}={result_for(key_for(base, i))}{GATE.padding}"
        for i in range(CALLS_PER_CONVERSATION)
    ]


def verify(output: object, base: str) -> bool:
    """True when the final text quotes all four tool results under their call ids."""
    return isinstance(output, str) and all(f in output for f in expected_fragments(base))


class ToolGate:
    """How the `lookup` tool behaves in this process: sleep, or block on an event.

    `waits`, when set, gives the sleep of the call for key `<base>.<i>` as `waits[i]` (the
    early-start scenario's tools of different lengths); `padding` is appended to every result
    (the long-conversation scenario's bulky Chinese results).
    """

    def __init__(self) -> None:
        self.wait: float = 0.0
        self.waits: tuple[float, ...] = ()
        self.padding: str = ""
        self.event: asyncio.Event | None = None
        self.entered: int = 0

    def wait_for(self, key: str) -> float:
        if self.waits:
            index = key.rsplit(".", 1)[-1]
            if index.isdigit() and int(index) < len(self.waits):
                return self.waits[int(index)]
        return self.wait


GATE: Final = ToolGate()


async def lookup_body(key: str) -> str:
    """The body of every target's `lookup` tool."""
    GATE.entered += 1
    event = GATE.event
    wait = GATE.wait_for(key)
    if event is not None:
        await event.wait()  # bounded by the worker's phase timeout, which sets the event
    elif wait > 0:
        await asyncio.sleep(wait)
    return result_for(key) + GATE.padding
