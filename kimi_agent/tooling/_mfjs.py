"""Moonshot's schema dialect (MFJS): its vocabulary, walle's limits, and small helpers
shared by the checker (`_dialect.py`) and the normaliser (`_normalise.py`)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, Literal

__all__ = [
    "ALLOWED",
    "COMMON",
    "JSON_TYPES",
    "RESERVED_NAMES",
    "ROOT_ONLY",
    "SUPPORTED",
    "TOOL_NAME_RE",
    "Level",
    "is_number",
    "json_type",
    "matches",
    "render",
    "type_list",
]

Level = Literal["strict", "ultra"]

TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
COMMON = frozenset({"description", "title"})
ROOT_ONLY = frozenset({"$defs", "$id"})
SUPPORTED = frozenset({
    "type", "properties", "additionalProperties", "items", "enum", "required", "anyOf",
    "description", "$defs", "$ref", "title", "$id", "default", "maxLength", "minLength",
    "maximum", "minimum", "maxItems", "minItems",
    "pattern",  # walle lets it through its unsupported-keyword check ("planned")
})
_NUMERIC = frozenset({"type", "minimum", "maximum", "enum", "default"}) | COMMON
ALLOWED: dict[str, frozenset[str]] = {
    "object": frozenset({"type", "properties", "required", "additionalProperties", "$ref",
                         "anyOf", "default"}) | COMMON,
    "array": frozenset({"type", "items", "minItems", "maxItems", "$ref", "default"}) | COMMON,
    "string": frozenset({"type", "minLength", "maxLength", "pattern", "enum", "default"})
    | COMMON,
    "number": _NUMERIC,
    "integer": _NUMERIC,
    "boolean": frozenset({"type", "enum", "default"}) | COMMON,
    "null": frozenset({"type", "enum", "default"}) | COMMON,
}
RESERVED_NAMES = frozenset({"$defs", "$ref", "anyOf", "required", "additionalProperties"})
"""Property names walle refuses (they would read as keywords)."""

MAX_ENUM_ITEMS = 1000
MAX_ENUM_TEXT = 75_000
ENUM_TEXT_THRESHOLD = 2500
MAX_ANY_OF = 500
MAX_DEPTH = 30
MAX_SIZE = 120_000
MAX_PROPERTIES = 3000
"""walle's default limits (its conf.go); the server's own configuration is not published."""

MAX_SAFE_INTEGER = 2**53 - 1


def render(parts: Iterable[str]) -> str:
    """A walle path: `root`, or the keys from the root joined by dots."""
    text = ".".join(parts)
    return text or "root"


def json_type(value: Any) -> str:
    """The JSON-schema type of a JSON value (`bool` is a boolean, not an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def matches(value: Any, kind: str) -> bool:
    """Whether the literal `value` is of the JSON type `kind` (3.0 counts as an integer)."""
    if kind == "number":
        return is_number(value) and math.isfinite(value)
    if kind == "integer":
        return is_number(value) and math.isfinite(value) and float(value).is_integer()
    return json_type(value) == kind


def type_list(node: dict[str, Any]) -> list[str] | None:
    """The types a node declares, when `type` is a valid string or list (else None)."""
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind] if kind in JSON_TYPES else None
    if isinstance(kind, list) and kind and all(isinstance(k, str) and k in JSON_TYPES
                                               for k in kind):
        return list(kind)
    return None
