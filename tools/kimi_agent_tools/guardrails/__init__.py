"""Text guardrails for Chinese customer service: PII masking, sensitive words, unconfirmed claims.

文本护栏。Plain functions and classes on strings, no model calls:

- `mask_pii(text)` / `PiiMasker` — mask mainland-China mobile numbers, identity-card numbers
  and bank-card numbers (check digits validated, near-misses left alone).
- `SensitiveWords(words)` — find or redact a word list on normalised text (full-width,
  case, traditional characters, separators inserted between characters).
- `unconfirmed_claims(answer, tool_results)` / `ClaimChecker` — money amounts and
  order/refund ids in an answer that no tool result contains.

Each finder can run on a streamed answer: its ``holdback(text)`` says how many trailing
characters may still change, and ``stream()`` returns a `HeldBackStream` that sends the rest.
Streams chain: ``words_stream.feed(pii_stream.feed(chunk))``.
"""

from __future__ import annotations

from kimi_agent_tools.guardrails.checksums import (
    id_card_check_digit,
    is_bank_card_number,
    is_id_card_number,
    is_legacy_id_card_number,
    is_luhn_valid,
    is_mobile_number,
    luhn_check_digit,
)
from kimi_agent_tools.guardrails.claims import (
    DEFAULT_REFERENCE_PATTERN,
    Claim,
    ClaimChecker,
    ClaimKind,
    find_claims,
    unconfirmed_claims,
)
from kimi_agent_tools.guardrails.errors import GuardrailValueError
from kimi_agent_tools.guardrails.normalize import normalize_for_matching
from kimi_agent_tools.guardrails.pii import (
    DEFAULT_KEEP,
    DEFAULT_KINDS,
    MaskResult,
    MaskStream,
    PiiFinding,
    PiiKind,
    PiiMasker,
    mask_pii,
)
from kimi_agent_tools.guardrails.streaming import HeldBackStream
from kimi_agent_tools.guardrails.words import (
    RedactResult,
    RedactStream,
    SensitiveWords,
    WordMatch,
)

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_KINDS",
    "DEFAULT_REFERENCE_PATTERN",
    "Claim",
    "ClaimChecker",
    "ClaimKind",
    "GuardrailValueError",
    "HeldBackStream",
    "MaskResult",
    "MaskStream",
    "PiiFinding",
    "PiiKind",
    "PiiMasker",
    "RedactResult",
    "RedactStream",
    "SensitiveWords",
    "WordMatch",
    "find_claims",
    "id_card_check_digit",
    "is_bank_card_number",
    "is_id_card_number",
    "is_legacy_id_card_number",
    "is_luhn_valid",
    "is_mobile_number",
    "luhn_check_digit",
    "mask_pii",
    "normalize_for_matching",
    "unconfirmed_claims",
]
