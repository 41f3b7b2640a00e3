"""Errors raised by the ready-made tools.

工具的错误。Errors of the ready-made tools.

The rule every tool here follows, so the model meets the same behaviour everywhere:

- A call that cannot be done as asked **raises** one of these errors. The executor turns the
  exception into a tool message, so the text is written for the model to read and act on:
  Chinese first (what the customer may be told), then English (what to fix). Examples: an
  unknown order id, a malformed expression, a host that is not on the allow-list.
- A search or a status check that simply has nothing to show **returns** a normal result that
  says so (an empty `results` list, `"shipped": false`): finding nothing is an answer, not a
  mistake.

All errors derive from `ToolFailure`, so a program that calls the tools directly can catch
them in one place; `InvalidInputError` and `NotFoundError` are also a `ValueError` and a
`LookupError` for code that already catches those.
"""

from __future__ import annotations

__all__ = ["InvalidInputError", "NotFoundError", "RefusedError", "ToolFailure"]


class ToolFailure(Exception):
    """工具无法完成请求。A tool could not do what was asked; the message says why."""


class InvalidInputError(ToolFailure, ValueError):
    """参数有误。The arguments are malformed or out of range (e.g. a bad expression)."""


class NotFoundError(ToolFailure, LookupError):
    """找不到对象。The thing the arguments name does not exist (e.g. an unknown order)."""


class RefusedError(ToolFailure):
    """请求被拒绝。The request is understood but not allowed (e.g. refund over the total)."""
