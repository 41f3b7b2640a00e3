"""The text guardrails as agent guardrails: `Agent(input_guardrails=[...],
output_guardrails=[...], tool_guardrails=[...])`.

```python
from kimi_agent_tools.guardrails.agent import (
    ClaimsGuardrail, PiiGuardrail, SensitiveWordsGuardrail)

agent = Agent(...,
    input_guardrails=[PiiGuardrail(), SensitiveWordsGuardrail(["傻", "滚"], reply="请文明用语。")],
    output_guardrails=[PiiGuardrail(), ClaimsGuardrail()],
    tool_guardrails=[PiiGuardrail()])
```

Each has `holdback(text)`, so on a streamed answer only the few characters that may still
start a match are held back (see `kimi_agent.agent` guardrails).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kimi_agent import GuardrailResult, RunContext
from kimi_agent.wire import ToolMessage
from kimi_agent_tools.guardrails.claims import ClaimChecker
from kimi_agent_tools.guardrails.pii import DEFAULT_KINDS, PiiKind, PiiMasker
from kimi_agent_tools.guardrails.words import SensitiveWords

__all__ = ["ClaimsGuardrail", "PiiGuardrail", "SensitiveWordsGuardrail"]


class PiiGuardrail:
    """Masks mainland-China phone, ID-card and bank-card numbers (a rewrite, never a trip):
    on the customer's message it keeps them out of the model and the session; on the answer
    and on tool results it keeps them off the screen."""

    name = "mask_pii"

    def __init__(self, kinds: Iterable[PiiKind] = DEFAULT_KINDS) -> None:
        self.masker = PiiMasker(kinds)

    def __call__(self, ctx: RunContext[Any], text: str) -> GuardrailResult:
        masked = self.masker.mask(text)
        if not masked.changed:
            return GuardrailResult.allow()
        kinds = ", ".join(sorted(k.value for k in masked.kinds))
        return GuardrailResult.rewrite(masked.text, f"masked {kinds}")

    def holdback(self, text: str) -> int:
        return self.masker.holdback(text)


class SensitiveWordsGuardrail:
    """A word list matched on normalised Chinese text (full-width, traditional characters,
    separators). `action="trip"` ends the run with `reply`; `"redact"` stars the words out."""

    name = "sensitive_words"

    def __init__(self, words: Iterable[str] | Mapping[str, str], *,
                 reply: str = "抱歉，这个问题我无法回答。", action: str = "trip") -> None:
        if action not in ("trip", "redact"):
            raise ValueError(f"action must be 'trip' or 'redact', not {action!r}")
        self.words = SensitiveWords(words)
        self.reply = reply
        self.action = action

    def __call__(self, ctx: RunContext[Any], text: str) -> GuardrailResult:
        if self.action == "redact":
            redacted = self.words.redact(text)
            if not redacted.changed:
                return GuardrailResult.allow()
            return GuardrailResult.rewrite(redacted.text, "sensitive words redacted")
        found = self.words.find(text)
        if not found:
            return GuardrailResult.allow()
        return GuardrailResult.trip(self.reply, f"sensitive word {found[0].word!r}")

    def holdback(self, text: str) -> int:
        return self.words.holdback(text)


class ClaimsGuardrail:
    """An output guardrail: the answer must not promise what no tool confirmed — a money
    amount or an order / refund id that appears in none of the conversation's tool results
    trips the run with `reply`."""

    name = "unconfirmed_claims"

    def __init__(self, *, reply: str = "这个问题我需要再核实一下，稍后由同事回复您。",
                 known: Iterable[str] = ()) -> None:
        self.reply = reply
        self.known = tuple(known)

    def __call__(self, ctx: RunContext[Any], text: str) -> GuardrailResult:
        messages = ctx.signals.messages or ()
        results = [m.content for m in messages if isinstance(m, ToolMessage)]
        checker = ClaimChecker(results, known=self.known)
        unconfirmed = checker.unconfirmed(text)
        if not unconfirmed:
            return GuardrailResult.allow()
        what = ", ".join(c.text for c in unconfirmed[:3])
        return GuardrailResult.trip(self.reply, f"unconfirmed: {what}")

    def holdback(self, text: str) -> int:
        return ClaimChecker.holdback(text)
