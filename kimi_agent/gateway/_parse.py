"""A 2xx body as a `ChatCompletion`, or the typed error saying what was wrong with it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kimi_agent.errors import EmptyReplyError, GatewayError, ResponseFormatError
from kimi_agent.gateway._headers import call_info
from kimi_agent.wire import ChatCompletion


def parse_completion(content: bytes, headers: Any, model: str, *,
                     final: bool) -> ChatCompletion:
    """A 2xx body as a `ChatCompletion`.

    `final`: the body is a non-streamed 2xx, which is never retried nor fallen over (the
    gateway charged it).

    Raises:
        ResponseFormatError: the body is not a chat completion.
        EmptyReplyError: it has no choice.
    """
    try:
        completion = ChatCompletion.model_validate_json(content)
    except (ValidationError, ValueError) as exc:
        info = call_info(headers, model=model, status=200, stream=False)
        preview = content[:200].decode("utf-8", "replace")
        error: GatewayError = ResponseFormatError(
            f"the gateway answered 2xx with a body that is not a chat completion: {preview!r} "
            f"({type(exc).__name__})",
            model=model, request_id=info.request_id, trace_id=info.trace_id,
            request_ids=info.request_ids, call=info,
        )
        raise _charged(error) if final else error from None
    if not completion.choices:
        info = call_info(headers, model=model, status=200, stream=False,
                         body_id=completion.id or None)
        error = EmptyReplyError("the gateway answered with no choices", model=model,
                                request_id=info.request_id, trace_id=info.trace_id,
                                request_ids=info.request_ids, call=info)
        raise _charged(error) if final else error
    if completion.choices[0].message.model is None:
        completion.choices[0].message.model = completion.model or model
    return completion


def _charged(error: GatewayError) -> GatewayError:
    error.retryable = False
    error.fallback_ok = False
    return error
