"""The one error of the text guardrails.

护栏配置错误。Everything else in this package is total: any string can be masked, searched or
checked, so only values that cannot work as *configuration* raise.
"""

from __future__ import annotations

from kimi_agent.errors import ConfigurationError

__all__ = ["GuardrailValueError"]


class GuardrailValueError(ConfigurationError):
    """A value given to a guardrail helper cannot work; the message names it and says why.

    Examples: a sensitive word that is empty once spaces and punctuation are ignored, an
    unknown PII kind, a check-digit payload that is not all digits. It is a
    `kimi_agent.errors.ConfigurationError`, hence also a `KimiAgentError` and a `ValueError`.
    """
