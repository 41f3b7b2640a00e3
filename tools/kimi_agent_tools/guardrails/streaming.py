"""Hold back the tail of a streamed text that a later chunk could still change.

A masker or matcher that can say how many trailing characters of a partial text might still
become (or stop being) part of a finding — its ``holdback`` — can run on a stream: each
chunk is appended to what was held, everything before the held tail is final and is sent,
the tail waits for the next chunk. A few characters already sent are kept as left context,
because whether a number is a phone number depends on the characters before it.

`PiiMasker.stream()` and `SensitiveWords.stream()` return one; a custom finder with the same
four pieces (``scan``, ``holdback``, ``apply``, ``shift``) can be streamed the same way.
Filters chain, since each takes and returns text: feed the output of one into the next, and
at the end feed the first one's `flush` into the next before flushing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from kimi_agent_tools.guardrails.errors import GuardrailValueError

__all__ = ["HeldBackStream"]


class _Span(Protocol):
    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


F = TypeVar("F", bound=_Span)


class HeldBackStream(Generic[F]):
    """Stream filter: `feed` chunks, get back the part that is final, `flush` at the end.

    The concatenation of everything returned equals the filter applied to the whole text at
    once, and `findings` (in coordinates of the whole text) equal the findings of the whole
    text. What is held back at any moment is ``holdback`` of the text so far, extended only
    when a finding already complete overlaps it (a finding is always sent whole).
    """

    def __init__(
        self,
        *,
        scan: Callable[[str], Sequence[F]],
        holdback: Callable[[str], int],
        apply: Callable[[str, Sequence[F]], str],
        shift: Callable[[F, int], F],
        context: int,
    ) -> None:
        self._scan = scan
        self._holdback = holdback
        self._apply = apply
        self._shift = shift
        self._context_size = context
        self._context = ""
        self._pending = ""
        self._sent = 0
        self._closed = False
        self.findings: list[F] = []
        """Findings of the text sent so far, with spans in the coordinates of the whole text."""

    @property
    def held(self) -> str:
        """The original text received but not sent yet (what `flush` would still process)."""
        return self._pending

    def feed(self, chunk: str) -> str:
        """Add `chunk`; return the filtered text that is now final (may be "").

        Raises:
            GuardrailValueError: the stream was already flushed.
        """
        if self._closed:
            raise GuardrailValueError(
                "流已结束，不能再写入。The stream was flushed; start a new one for new text."
            )
        self._pending += chunk
        return self._emit(final=False)

    def flush(self) -> str:
        """End of text: return the filtered rest. Later `feed` calls raise.

        Raises:
            GuardrailValueError: the stream was already flushed.
        """
        if self._closed:
            raise GuardrailValueError("流已结束。The stream was already flushed.")
        out = self._emit(final=True)
        self._closed = True
        return out

    def _emit(self, *, final: bool) -> str:
        context = self._context
        full = context + self._pending
        hold = 0 if final else min(self._holdback(full), len(self._pending))
        cut = len(full) - hold
        found = [f for f in self._scan(full) if f.start >= len(context)]
        crossing = [f.start for f in found if f.start < cut < f.end]
        if crossing:  # a finding not final yet: never send half of it
            cut = min(crossing)
        final_found = [self._shift(f, -len(context)) for f in found if f.end <= cut]
        safe = full[len(context):cut]
        out = self._apply(safe, final_found)
        self.findings.extend(self._shift(f, self._sent) for f in final_found)
        self._sent += len(safe)
        self._context = (context + safe)[-self._context_size:] if self._context_size else ""
        self._pending = full[cut:]
        return out
