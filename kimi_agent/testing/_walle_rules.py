"""walle's vocabulary and its per-keyword checks, for the oracle in `_walle.py`.

The keyword checks mirror walle's `keyword_validators.go` in what they accept and in their
messages: each gets the walk (for the level, limits, root and the refs it records), the
schema node, the keyword's value, the keyword's path and the node's path, and raises a
`SchemaProblem` at the path walle reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "BY_TYPE",
    "COMMON",
    "KEYWORDS",
    "RESERVED_NAMES",
    "ROOT",
    "SUPPORTED",
    "TOP_ONLY",
    "TYPES",
    "Level",
    "Limits",
    "Path",
    "SchemaProblem",
    "at",
    "go_repr",
    "is_num",
]

Level = Literal["lite", "strict", "ultra"]
Path = tuple[str, ...]
ROOT: Path = ("root",)

TYPES = frozenset({"string", "number", "integer", "boolean", "null", "array", "object"})
COMMON = frozenset({"description", "title"})
TOP_ONLY = frozenset({"$defs", "$id"})
SUPPORTED = frozenset(
    {"type", "properties", "additionalProperties", "items", "enum", "required", "anyOf"}
    | {"description", "$defs", "$ref", "title", "$id", "default", "maxLength", "minLength"}
    | {"maximum", "minimum", "maxItems", "minItems", "pattern"}
)
"""Keywords ultra does not call unsupported (`pattern` is walle's "future" keyword)."""
RESERVED_NAMES = frozenset({"$defs", "$ref", "anyOf", "required", "additionalProperties"})
_NUMBER = frozenset({"type", "minimum", "maximum", "enum", "default"})
BY_TYPE: dict[str, frozenset[str]] = {
    "object": frozenset(
        {"type", "properties", "required", "additionalProperties", "$ref", "anyOf", "default"}
    ),
    "array": frozenset({"type", "items", "minItems", "maxItems", "$ref", "default"}),
    "string": frozenset({"type", "minLength", "maxLength", "pattern", "enum", "default"}),
    "number": _NUMBER,
    "integer": _NUMBER,
    "boolean": frozenset({"type", "enum", "default"}),
    "null": frozenset({"type", "enum", "default"}),
}
"""The keywords ultra allows beside each type (plus `description`/`title`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """walle's configurable limits, at the defaults of its current code (`conf.go`)."""

    max_enum_items: int = 1000
    max_enum_string_length: int = 75000
    enum_string_check_threshold: int = 2500
    max_any_of_items: int = 500
    max_depth: int = 30
    max_size: int = 120000
    max_total_properties: int = 3000


class SchemaProblem(Exception):
    """Why walle refuses a schema: `path` (dotted, walle's style) and `message`."""

    def __init__(self, message: str, path: Path) -> None:
        self.message = message
        self.path = re.sub(r"anyOf\{\d+\}", "anyOf", ".".join(path) or "root")
        super().__init__(f"At path '{self.path}': {message}")


def at(path: Path, *parts: str) -> Path:
    """`path` extended by `parts` (walle's paths start afresh below the root)."""
    return tuple(parts) if path == ROOT else (*path, *parts)


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def go_repr(value: Any) -> str:
    """A value as Go's `%v` prints it (enough for walle's messages)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_repr(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


class Walk(Protocol):
    root: Any
    strict: bool
    ultra: bool
    limits: Limits
    refs: dict[str, None]


Check = Callable[[Walk, dict[str, Any], Any, Path, Path], None]


def _type(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise SchemaProblem("type must be string or array of strings", here)
    if w.ultra and len(set(map(str, value))) != len(value):
        raise SchemaProblem("duplicate types in type array", path)


def _properties(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, dict):
        raise SchemaProblem("properties must be an object", path)
    for name, sub in value.items():
        if w.ultra and name == "":
            raise SchemaProblem("property name cannot be empty", path)
        if w.strict and name in RESERVED_NAMES:
            raise SchemaProblem(
                f"property name '{name}' is reserved for JSON Schema keywords", path
            )
        if not isinstance(sub, dict):
            raise SchemaProblem(f"property schema for '{name}' must be an object", path)


def _required(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, list):
        raise SchemaProblem("required must be an array", path)
    if not value:
        return
    for name in value:
        if not isinstance(name, str):
            raise SchemaProblem("items in required array must be strings", path)
        if w.ultra and name == "":
            raise SchemaProblem("property names in required array cannot be empty", path)
    if w.ultra:
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise SchemaProblem(f"duplicate items in required array: {name}", path)
            seen.add(name)
        kind = node.get("type")
        if kind not in ("object", ["object"]):
            raise SchemaProblem("required keyword must be used with object", path)
        if not isinstance(node.get("properties"), dict):
            raise SchemaProblem("required specified but 'properties' keyword is missing", path)
    props = node.get("properties")
    props = props if isinstance(props, dict) else {}
    for name in value:
        if name not in props:
            raise SchemaProblem(f"required property '{name}' is not defined in properties", path)


def _matches(value: Any, kind: str, path: Path) -> bool:
    """walle's `IsTypeMatch`: a number type meeting a non-number is an error, not a miss."""
    if kind == "string":
        return isinstance(value, str)
    if kind in ("number", "integer"):
        if not is_num(value):
            raise SchemaProblem(f"not a valid {kind}", path)
        if not math.isfinite(value):
            raise SchemaProblem("invalid number: NaN or Infinity not allowed", path)
        if kind == "integer" and not float(value).is_integer():
            raise SchemaProblem("not a valid integer", path)
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise SchemaProblem("invalid type", path)


def _enum(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, list):
        raise SchemaProblem("enum must be an array", path)
    if not value:
        raise SchemaProblem("enum array cannot be empty", path)
    if len(value) > w.limits.max_enum_items:
        limit = w.limits.max_enum_items
        raise SchemaProblem(f"enum array cannot have more than {limit} items", path)
    if "type" not in node:
        raise SchemaProblem("type is not defined", here)
    kind = node["type"]
    if isinstance(kind, str):
        kinds = [kind]
    elif isinstance(kind, list):
        if not all(isinstance(k, str) for k in kind):
            raise SchemaProblem("type array must be an array of strings", here)
        kinds = list(kind)
    else:
        raise SchemaProblem("invalid type value", here)
    if len(kinds) > 2 or (len(kinds) == 2 and "null" not in kinds):
        raise SchemaProblem(
            "when type is array and enum is specified, currently only 2 types are supported, "
            "one must be null, and the other can be string/integer/number/boolean",
            here,
        )
    if len(kinds) == 2:
        other = next((k for k in kinds if k != "null"), "")
        if other not in ("string", "integer", "number", "boolean"):
            raise SchemaProblem(f"invalid type combination with enum: {other} + null", here)
    for item in value:
        if not any(_matches(item, k, path) for k in kinds):
            raise SchemaProblem(
                f"enum value ({go_repr(item)}) does not match any type in [{' '.join(kinds)}]",
                path,
            )
    threshold = w.limits.enum_string_check_threshold
    if {"string", "number", "integer"} & set(kinds) and len(value) > threshold:
        total = sum(
            len(item.encode()) if isinstance(item, str) else len(go_repr(item))
            for item in value
            if isinstance(item, str) or is_num(item)
        )
        if total > w.limits.max_enum_string_length:
            raise SchemaProblem(
                f"total string length of enum values ({total}) exceeds maximum limit of "
                f"{w.limits.max_enum_string_length} characters when enum has more than "
                f"{threshold} values",
                path,
            )


def _items(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, dict):
        raise SchemaProblem("items must be an object", path)


def _siblings(w: Walk, node: dict[str, Any], keyword: str, here: Path, what: str) -> None:
    if not w.ultra:
        return
    for key in sorted(node):
        if key == keyword or (here == ROOT and key in TOP_ONLY) or key in COMMON:
            continue
        raise SchemaProblem(f"keyword '{key}' is not allowed at the same level as {what}", here)


def _ref(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, str):
        raise SchemaProblem("$ref must be a string", path)
    if value == "#":
        w.refs[value] = None
        return
    if not value.startswith("#/$defs/"):
        raise SchemaProblem("references must start with #/$defs/", path)
    if value == "#/$defs/":
        raise SchemaProblem("definition name cannot be empty", path)
    if not isinstance(w.root, dict) or "$defs" not in w.root:
        raise SchemaProblem(f"$defs not found for reference: {value}", path)
    _siblings(w, node, "$ref", here, "$ref")
    w.refs[value] = None


def _description(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, str):
        raise SchemaProblem("description must be a string", path)


def _any_of(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, list):
        raise SchemaProblem("anyOf must be an array", path)
    if not value or len(value) > w.limits.max_any_of_items:
        raise SchemaProblem(f"anyOf must have 1-{w.limits.max_any_of_items} items", path)
    if not all(isinstance(branch, dict) for branch in value):
        raise SchemaProblem("schema in anyOf must be an object", path)
    _siblings(w, node, "anyOf", here, "anyOf")


def _additional(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, bool | dict):
        raise SchemaProblem("additionalProperties must be a boolean or an object", path)


def _no_slash(value: Any, path: Path) -> None:
    if not isinstance(value, dict):
        raise SchemaProblem("schema must be an object", path)
    for key, sub in value.items():
        if "/" in key:
            raise SchemaProblem(
                f"$defs property name '{key}' cannot contain '/' character", path[:-1] or ROOT
            )
        if isinstance(sub, dict):
            _no_slash(sub, (*path, key))
        elif isinstance(sub, list):
            for i, item in enumerate(sub):
                if isinstance(item, dict):
                    _no_slash(item, (*path, f"{key}[{i}]"))


def _defs(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
    if not isinstance(value, dict):
        raise SchemaProblem("$defs must be an object", path)
    for name, sub in value.items():
        if name == "":
            raise SchemaProblem("$defs property name cannot be empty", path)
        if "/" in name:
            raise SchemaProblem(f"$defs property name '{name}' cannot contain '/' character", path)
        if not isinstance(sub, dict):
            raise SchemaProblem(f"$defs schema must be object: {name}", path)
        _no_slash(sub, (*path, name))


def _string_or_null(name: str) -> Check:
    def check(w: Walk, node: dict[str, Any], value: Any, path: Path, here: Path) -> None:
        if value is not None and not isinstance(value, str):
            raise SchemaProblem(f"{name} must be a string", path)

    return check


KEYWORDS: dict[str, Check] = {
    "type": _type,
    "properties": _properties,
    "required": _required,
    "enum": _enum,
    "items": _items,
    "$ref": _ref,
    "description": _description,
    "anyOf": _any_of,
    "additionalProperties": _additional,
    "$defs": _defs,
    "$id": _string_or_null("$id"),
    "pattern": _string_or_null("pattern"),
}
"""walle's keyword validators, run on every node at every level (`default` checks nothing)."""
