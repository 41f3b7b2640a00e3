"""The exception hierarchy of kimi-agent.

Every error a user can meet is a `KimiAgentError`. Gateway errors follow the gateway's error
table and Moonshot's (docs/wire/gateway.md): each class says whether a retry or a fallback to
the other model can help (`retryable`, `fallback_ok`), so the client and the router decide
from the type alone. The finer classes added for the gateway's codes subclass the older ones
(a spend cap is still a `QuotaExceededError`, a concurrency cap still a `RateLimitError`), so
`except` clauses written before them keep working. Run errors carry the messages of the run so
far, so nothing the user gave us is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from kimi_agent.wire import CallInfo, ChatCompletion, Message


__all__ = [
    "ApprovalError",
    "AuthenticationError",
    "BadRequestError",
    "ConcurrencyLimitError",
    "ConcurrentRunError",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "ConversationBusyError",
    "DuplicateToolError",
    "EmptyAnswerError",
    "EmptyReplyError",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayTimeoutError",
    "GuardrailTripped",
    "IncompleteStreamError",
    "InsufficientBalanceError",
    "InvalidToolCallIdsError",
    "KeyQuotaExceededError",
    "KimiAgentError",
    "MaxStepsExceededError",
    "MissingAPIKeyError",
    "ModelFailedError",
    "ModelNotAvailableError",
    "NotFoundError",
    "OutputLengthError",
    "OutputValidationError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "ResponseFormatError",
    "RunError",
    "RunTimeoutError",
    "ServerError",
    "SessionError",
    "SessionSchemaError",
    "SessionStoreUnavailableError",
    "SpendCapError",
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
    `status`, `code` and `error_type` are the HTTP status and the envelope's machine-readable
    `code` and `type` (None when absent); `request_id` / `trace_id` name the exact call for a
    support ticket, and `request_ids` holds every id the answer carried (headers and body).
    `call` holds the rate-limit and quota headers of the answer, when there was one.
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
        code: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        request_ids: Mapping[str, str] | None = None,
        model: str | None = None,
        retry_after: float | None = None,
        call: CallInfo | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.request_id = request_id
        self.trace_id = trace_id
        self.request_ids: dict[str, str] = dict(request_ids or {})
        self.model = model
        self.retry_after = retry_after
        self.call = call

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.status is not None:
            details.append(f"status={self.status}")
        if self.code:
            details.append(f"code={self.code}")
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
    """400 / 413 / 422 caused by the request itself: never retried, never sent to another
    model (gateway code `invalid_param`, Moonshot's `invalid_request_error`)."""


class ContextLengthError(BadRequestError):
    """Prompt + `max_tokens` do not fit the model's window (code `context_length_exceeded`,
    or Moonshot's `exceeded model token limit` wording). A larger window may help."""

    fallback_ok = True


class ContentFilterError(BadRequestError):
    """The input was judged high-risk by the provider's content filter."""


class AuthenticationError(GatewayError):
    """401: the API key is missing, wrong, revoked or expired (code `invalid_api_key`)."""


class PermissionDeniedError(AuthenticationError):
    """403 `permission_denied`: the key is valid but the caller's IP is not allowed (the
    key's allow / deny list). Never retried, never fallen over."""


class PaymentRequiredError(GatewayError):
    """402: the gateway refused for billing reasons."""


class NotFoundError(GatewayError):
    """404: the route does not exist (check `base_url`)."""


class ModelNotAvailableError(NotFoundError, BadRequestError):
    """The model cannot be used: not in the catalog or retired (`model_not_found`,
    `unsupported_model`, a 404 naming the model), or not reachable from the key's routing
    group (403 `model_not_in_group`, 400 `model_not_allowed`).

    The other model may work, so the router falls over once. `model` is the model that was
    refused; `models` every model refused in this call (both, when the router tried both).
    """

    fallback_ok = True

    def __init__(self, message: str, *, models: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.models: tuple[str, ...] = tuple(models) or (
            (self.model,) if self.model else ())


class RateLimitError(GatewayError):
    """429 "busy": rate limit reached or engine overloaded. Retried, then fallen over."""

    retryable = True
    fallback_ok = True


class ConcurrencyLimitError(RateLimitError):
    """429 `concurrency_limit`: the account has too many requests in flight (Free 5, Pro 25,
    Max 100). It clears in seconds as other requests finish: retried after a short jittered
    wait (1-3 s), never fallen over (the other model counts against the same account). Set
    `GatewayClient(concurrency=...)` to queue instead of meeting it."""

    fallback_ok = False


class QuotaExceededError(GatewayError):
    """429 (or 402) that means the account or key is out of quota or money: no retry, no
    fallback."""


class SpendCapError(QuotaExceededError):
    """429 `rate_limit_error` without a code: one of the key's USD spend caps (rolling 5 h /
    24 h / 7 d) is used up. Per key and across models, so never fallen over.

    `reset_at` is when the bucket resets (UTC), from `X-RateLimit-Reset` or the message
    (`... resets at 2026-05-25 14:00:00 UTC`), None when neither says. The client waits for the
    reset only when it falls within the retry deadline; otherwise this is raised at once.
    """

    def __init__(self, message: str, *, reset_at: datetime | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reset_at = reset_at


class InsufficientBalanceError(PaymentRequiredError, QuotaExceededError):
    """402 `insufficient_balance` (or Moonshot's "insufficient balance"): the organisation's
    wallet is empty. Retry only after a top-up."""


class KeyQuotaExceededError(PaymentRequiredError, QuotaExceededError):
    """402 `quota_exceeded`: the key's lifetime quota is used up. Retry only after raising
    it."""


class ServerError(GatewayError):
    """5xx: an upstream failure. Retried (at most 4 attempts), then fallen over."""

    retryable = True
    fallback_ok = True


class GatewayTimeoutError(GatewayError):
    """The gateway did not answer in time. `phase` says which wait ran out: `"connect"`,
    `"headers"` (no response headers), `"reply"` (a non-streamed reply took too long),
    `"idle"` (a stream went silent between events), `"write"` or `"pool"`."""

    retryable = True
    fallback_ok = True

    def __init__(self, message: str, *, phase: str = "reply", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.phase = phase


class GatewayConnectionError(GatewayError):
    """The connection to the gateway failed or dropped."""

    retryable = True
    fallback_ok = True


class IncompleteStreamError(GatewayError):
    """A stream ended before `data: [DONE]`."""

    retryable = True
    fallback_ok = True


class ResponseFormatError(GatewayError):
    """The gateway answered 2xx with a body that is not a chat completion. Retried only for
    streams that delivered nothing: a non-streamed 2xx is never sent again, since the gateway
    charges every 2xx."""

    retryable = True
    fallback_ok = True


class EmptyReplyError(GatewayError):
    """A reply that is not an answer: a stream without any choice, or (raised by the agent
    loop) a reply with neither text nor tool calls, thinking only. It is never committed to
    the history, since Moonshot refuses an assistant message that is empty. A stream that
    gave nothing is retried once; `completion` holds the empty reply when there was one."""

    retryable = True
    fallback_ok = False

    def __init__(self, message: str, *, completion: ChatCompletion | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.completion = completion


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
    """The model call of a step failed for good; `cause` is the gateway error (its class says
    why: `SpendCapError`, `ModelNotAvailableError`, `GatewayTimeoutError`, ...).

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


class SessionStoreUnavailableError(SessionError):
    """The session store's server (PostgreSQL, Redis) could not be reached or went away
    mid-operation. A write that raises this was not applied, or (when the connection dropped
    during the commit) may have been: re-read before writing again."""


class SessionSchemaError(SessionError):
    """The store holds data that is not this kimi-agent's (a foreign schema or key), or a
    schema newer than this version understands."""


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
        self.checked_text: str | None = None
        """The text as the guardrails before the one that tripped left it (e.g. masked)."""
