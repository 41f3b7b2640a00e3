"""The exception hierarchy of kimi-agent.

Every error a user can meet is a `KimiAgentError`. Gateway errors follow the tables of
docs/wire/kimi.md#errors and docs/wire/gateway.md: each class says whether a retry or a
fallback to the other model can help (`retryable`, `fallback_ok`), so the client and the
router decide from the type alone.
Run errors carry the messages of the run so far, so nothing the user gave us is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kimi_agent.wire import ChatCompletion, Message


__all__ = [
    "ApprovalError",
    "AuthenticationError",
    "BadRequestError",
    "ConcurrentRunError",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "ConversationBusyError",
    "DuplicateToolError",
    "EmptyAnswerError",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayTimeoutError",
    "GuardrailTripped",
    "IncompleteStreamError",
    "InvalidToolCallIdsError",
    "KimiAgentError",
    "MaxStepsExceededError",
    "MissingAPIKeyError",
    "ModelFailedError",
    "NotFoundError",
    "OutputLengthError",
    "OutputValidationError",
    "PaymentRequiredError",
    "QuotaExceededError",
    "RateLimitError",
    "ResponseFormatError",
    "RunError",
    "RunTimeoutError",
    "ServerError",
    "SessionError",
    "ToolArgumentError",
    "ToolCallError",
    "ToolDefinitionError",
    "ToolError",
    "ToolRetriesExceededError",
    "ToolTimeoutError",
    "UnknownToolError",
    "UnusableReplyError",
    "UsageLimitExceededError",
]


class KimiAgentError(Exception):
    """Base class of every error raised by kimi-agent."""


class ConfigurationError(KimiAgentError, ValueError):
    """The framework was set up with values that cannot work (e.g. an unknown model)."""


# --------------------------------------------------------------------------- tools


class ToolError(KimiAgentError):
    """Base class of errors about tools."""


class ToolDefinitionError(ToolError, TypeError):
    """A function cannot become a tool: named function and parameter say what to fix."""


class DuplicateToolError(ToolError, ValueError):
    """A second tool with a name the registry already holds."""


class ToolCallError(ToolError):
    """A call from the model that cannot run; `message` is written for the model to act on."""

    def __init__(self, tool_name: str, message: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name
        self.message = message


class UnknownToolError(ToolCallError):
    """The model called a tool that does not exist."""


class ToolArgumentError(ToolCallError):
    """The arguments of a call are not valid JSON or do not fit the tool's schema."""

    def __init__(self, tool_name: str, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(tool_name, message)
        self.problems = list(problems)


class ToolTimeoutError(ToolCallError):
    """A tool ran longer than its timeout."""


# --------------------------------------------------------------------------- gateway


class GatewayError(KimiAgentError):
    """An error answered by (or on the way to) the gateway.

    `retryable`: the same request may succeed later on the same model.
    `fallback_ok`: the other model may succeed where this one failed.
    """

    retryable: bool = False
    fallback_ok: bool = False
    partial: ChatCompletion | None = None
    """What a stream had delivered before it failed, when it failed mid-way."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        model: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.trace_id = trace_id
        self.model = model
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.status is not None:
            details.append(f"status={self.status}")
        if self.error_type:
            details.append(f"type={self.error_type}")
        if self.model:
            details.append(f"model={self.model}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.trace_id:
            details.append(f"trace_id={self.trace_id}")
        if details:
            parts.append("(" + ", ".join(details) + ")")
        return " ".join(parts)


class MissingAPIKeyError(GatewayError, ConfigurationError):
    """No API key was given and `BYTESPIKE_API_KEY` is not set."""


class BadRequestError(GatewayError):
    """400 / 422 caused by the request itself: never retried, never sent to another model."""


class ContextLengthError(BadRequestError):
    """Prompt + `max_tokens` do not fit the model's window. A larger window may help."""

    fallback_ok = True


class ContentFilterError(BadRequestError):
    """The input was judged high-risk by the provider's content filter."""


class AuthenticationError(GatewayError):
    """401: the API key is missing, wrong or revoked."""


class PaymentRequiredError(GatewayError):
    """402: the gateway refused for billing reasons."""


class NotFoundError(GatewayError):
    """404: unknown model or path."""


class RateLimitError(GatewayError):
    """429 "busy": rate limit reached or engine overloaded. Retried, then fallen over."""

    retryable = True
    fallback_ok = True


class QuotaExceededError(GatewayError):
    """429 that means the account is out of quota or money: no retry, no fallback."""


class ServerError(GatewayError):
    """5xx: an upstream failure. Retried, then fallen over."""

    retryable = True
    fallback_ok = True


class GatewayTimeoutError(GatewayError):
    """The gateway did not answer in time."""

    retryable = True
    fallback_ok = True


class GatewayConnectionError(GatewayError):
    """The connection to the gateway failed or dropped."""

    retryable = True
    fallback_ok = True


class IncompleteStreamError(GatewayError):
    """A stream ended before `data: [DONE]`."""

    retryable = True
    fallback_ok = True


class ResponseFormatError(GatewayError):
    """The gateway answered 2xx with a body that is not a chat completion."""

    retryable = True
    fallback_ok = True


# --------------------------------------------------------------------------- runs


class RunError(KimiAgentError):
    """A run ended without an answer; `messages` holds the conversation so far."""

    def __init__(self, message: str, *, messages: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.messages: list[Message] = list(messages)


class MaxStepsExceededError(RunError):
    """The model kept calling tools for more than `max_steps` steps."""


class UsageLimitExceededError(RunError):
    """A usage limit (requests or tokens) was reached."""


class ToolRetriesExceededError(RunError):
    """The model kept making failing calls to one tool beyond its retry budget."""


class OutputLengthError(RunError):
    """The reply stopped at `max_tokens` (possibly inside the reasoning) with no answer."""


class OutputValidationError(RunError):
    """Structured output stayed invalid after the retry budget."""

    def __init__(
        self, message: str, *, messages: Sequence[Message] = (), errors: Any = None
    ) -> None:
        super().__init__(message, messages=messages)
        self.errors = errors


class ModelFailedError(RunError):
    """The model call of a step failed for good; `cause` is the gateway error.

    `partial` holds what a stream had delivered before it broke, so streamed text is not lost.
    """

    def __init__(
        self, message: str, *, messages: Sequence[Message] = (), cause: GatewayError,
        partial: ChatCompletion | None = None,
    ) -> None:
        super().__init__(message, messages=messages)
        self.cause = cause
        self.partial = partial


class SessionError(KimiAgentError):
    """A session store could not be read or written."""


class ApprovalError(KimiAgentError, ValueError):
    """`resume` was called with decisions that do not match the pending approvals."""


class UnusableReplyError(RunError):
    """The model's reply cannot be committed as it is: it was asked again once, and the
    second reply could not be used either. Nothing of it was stored."""


class EmptyAnswerError(UnusableReplyError):
    """The reply had neither text nor tool calls (e.g. only reasoning): not an answer, and an
    assistant message the gateway would refuse in the history."""


class InvalidToolCallIdsError(UnusableReplyError):
    """The reply's tool calls had duplicate or empty ids, which cannot be echoed back."""


class RunTimeoutError(RunError):
    """The run did not finish within `Agent(run_timeout=...)`; completed steps are kept."""


class ConcurrentRunError(RunError):
    """Another run changed the session while this one was under way; this run stopped
    before committing, so the history stays valid. Run again to continue."""


class ConversationBusyError(KimiAgentError):
    """Another run holds the conversation (in this process or another replica) and did not
    release it within the wait allowed."""


class GuardrailTripped(RunError):
    """A guardrail stopped the run. `reply` is what the customer is told instead (it is also
    stored as the answer, so the conversation shows what was said); `guardrail` names the
    guardrail, `kind` is "input", "output" or "tool", `reason` says why."""

    def __init__(self, message: str, *, messages: Sequence[Message] = (), reply: str = "",
                 guardrail: str = "", kind: str = "", reason: str = "") -> None:
        super().__init__(message, messages=messages)
        self.reply = reply
        self.guardrail = guardrail
        self.kind = kind
        self.reason = reason
