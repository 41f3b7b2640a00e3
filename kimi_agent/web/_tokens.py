"""Signed customer tokens: the host site says who the customer is and which conversation
is theirs; the web layer only checks the signature.

A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, "kimi-agent.customer." +
payload))`, the payload a compact JSON object `{"v": 1, "sub": customer id, "sid": session
id, "exp": unix seconds}`. The session id comes from the token and never from a request
body, so a customer can reach their own conversation only. Tokens are opaque to the
browser; the secret stays on the host's server (the one that knows who is signed in).

Staff use a separate credential (`staff_key`, checked in constant time), so that no
customer token, however minted, opens a staff endpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass

from kimi_agent.errors import ConfigurationError, KimiAgentError

__all__ = ["Customer", "TokenError", "mint_customer_token", "verify_customer_token"]

_DOMAIN = b"kimi-agent.customer."
_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")
MIN_SECRET_BYTES = 16


class TokenError(KimiAgentError):
    """A customer token that is missing, malformed, forged or expired (the message says
    which); answered as 401."""


@dataclass(frozen=True, slots=True)
class Customer:
    """Who a request speaks for: the customer and the one conversation they may reach."""

    customer_id: str
    session_id: str


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"the token secret must have at least {MIN_SECRET_BYTES} "
                                 f"bytes (got {len(key)}); use secrets.token_urlsafe(32)")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_id(value: str, what: str) -> str:
    """`value` if it is a usable id (1-128 of letters, digits and `_.:@-`).

    Raises:
        ConfigurationError: it is not.
    """
    if not isinstance(value, str) or not _ID.match(value):
        raise ConfigurationError(f"{what} must be 1-128 characters of letters, digits and "
                                 f"'_.:@-', not {value!r}")
    return value


def mint_customer_token(secret: str | bytes, customer_id: str, *,
                        session_id: str | None = None, ttl: float = 3600.0,
                        now: float | None = None) -> str:
    """A token that lets `customer_id` talk in conversation `session_id` for `ttl` seconds.

    Call it on the host site's server once the customer is signed in, and hand the token
    to the widget (`/widget#token=...`). `session_id` defaults to the customer id (one
    conversation per customer); give each conversation its own id to keep several.

    Raises:
        ConfigurationError: the secret is shorter than 16 bytes, an id is not 1-128
            characters of letters, digits and `_.:@-`, or `ttl` is not positive.
    """
    key = _secret_bytes(secret)
    check_id(customer_id, "customer_id")
    sid = check_id(session_id if session_id is not None else customer_id, "session_id")
    if not ttl > 0:
        raise ConfigurationError(f"ttl must be positive seconds, not {ttl!r}")
    expires = int((time.time() if now is None else now) + ttl)
    payload = json.dumps({"v": 1, "sub": customer_id, "sid": sid, "exp": expires},
                         separators=(",", ":"), ensure_ascii=False).encode()
    body = _b64(payload)
    signature = hmac.new(key, _DOMAIN + body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def verify_customer_token(secret: str | bytes, token: str, *,
                          now: float | None = None) -> Customer:
    """The customer a token speaks for.

    Raises:
        TokenError: the token is malformed, its signature does not match `secret`, or it
            has expired.
        ConfigurationError: the secret is shorter than 16 bytes.
    """
    key = _secret_bytes(secret)
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or len(token) > 2048:
        raise TokenError("the customer token is malformed")
    try:
        given = _unb64(signature)
        body_ascii = body.encode("ascii")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise TokenError("the customer token is malformed") from None
    expected = hmac.new(key, _DOMAIN + body_ascii, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise TokenError("the customer token's signature is not valid")
    try:
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise TokenError("the customer token is malformed") from None
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise TokenError("the customer token has an unknown format")
    customer_id, session_id, expires = payload.get("sub"), payload.get("sid"), payload.get("exp")
    if not (isinstance(customer_id, str) and isinstance(session_id, str)
            and isinstance(expires, int)):
        raise TokenError("the customer token has an unknown format")
    if (time.time() if now is None else now) >= expires:
        raise TokenError("the customer token has expired: ask the host site for a new one")
    return Customer(customer_id, session_id)


def staff_key_matches(expected: str, given: str) -> bool:
    """Whether `given` is the staff key (constant time)."""
    return hmac.compare_digest(expected.encode(), given.encode())
