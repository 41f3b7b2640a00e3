"""Moonshot's JSON-schema dialect (MFJS) for tool parameters: the checker.

Moonshot publishes the validator its server runs on tool schemas (MoonshotAI/walle); the
rules are summarised in docs/wire/schema-dialect.md. walle has levels; two matter here:

- `strict`: what Moonshot's server requires. Raw schemas (`Tool.from_schema`, MCP servers,
  other services) must pass it.
- `ultra` (walle's default): `strict` plus checks walle calls possibly harmless: only the
  MFJS keywords, only the keywords that fit each type, ranges in order, and nothing but
  `description` / `title` beside `anyOf` or `$ref`. Schemas made from Python signatures
  pass it.

`check_moonshot` lists every problem in walle's own form, `At path '<path>': <reason>`,
with walle's paths (`root`, `properties.order.items`, `$defs.Node`). This is an
implementation of walle's documented rules written for the client; it shares no code with
the gateway simulator's own oracle, so the two can disagree and a test can show it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from kimi_agent.tooling._dialect_refs import RefChecks
from kimi_agent.tooling._mfjs import (
    ALLOWED,
    COMMON,
    ENUM_TEXT_THRESHOLD,
    JSON_TYPES,
    MAX_ANY_OF,
    MAX_DEPTH,
    MAX_ENUM_ITEMS,
    MAX_ENUM_TEXT,
    MAX_PROPERTIES,
    MAX_SAFE_INTEGER,
    MAX_SIZE,
    RESERVED_NAMES,
    ROOT_ONLY,
    SUPPORTED,
    TOOL_NAME_RE,
    Level,
    is_number,
    matches,
    render,
    type_list,
)

__all__ = ["RESERVED_NAMES", "TOOL_NAME_RE", "Level", "check_moonshot", "check_tool_name"]

def check_tool_name(name: str) -> str | None:
    """Why `name` cannot name a tool, or None when it can."""
    if TOOL_NAME_RE.match(name):
        return None
    return (
        f"tool name {name!r} must match {TOOL_NAME_RE.pattern} "
        "(letters, digits, '_' or '-', not starting with a digit, at most 64 characters)"
    )


def check_moonshot(schema: Any, level: Level = "strict") -> list[str]:
    """Every way `schema` (a tool's `parameters`) breaks walle's rules at `level`; [] if none.

    Each problem reads `At path '<walle path>': <reason>`.
    """
    if not isinstance(schema, dict):
        return ["At path 'root': schema must be a dict"]
    if not schema:
        return []
    checker = _Checker(schema, level)
    try:
        size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        return [f"At path 'root': the schema is not JSON ({exc})"]
    if size > MAX_SIZE:
        checker.fail((), "schema exceeds maximum allowed size")
    checker.node(schema, (), 0)
    checker.refs_resolve()
    return checker.problems


class _Checker(RefChecks):
    def __init__(self, root: dict[str, Any], level: Level) -> None:
        self.root = root
        self.ultra = level == "ultra"
        self.problems: list[str] = []
        self.total_properties = 0
        self.refs: set[str] = set()

    def fail(self, parts: tuple[str, ...], reason: str) -> None:
        self.problems.append(f"At path '{render(parts)}': {reason}")

    # ------------------------------------------------------------------ one node

    def node(self, node: dict[str, Any], parts: tuple[str, ...], depth: int) -> None:
        if depth > MAX_DEPTH:
            self.fail(parts, f"schema depth exceeds maximum limit of {MAX_DEPTH}")
            return
        is_root = not parts
        if self.ultra:
            unsupported = sorted(k for k in node if k not in SUPPORTED)
            if unsupported:
                self.fail(parts, f"unsupported keywords: {', '.join(unsupported)}")
        if "$defs" in node:
            self._defs(node["$defs"], parts, depth)
        if "type" in node:
            self._type(node, parts, is_root)
        for key in sorted(node):
            check = _KEYWORDS.get(key)
            if check is not None:
                check(self, node, node[key], parts, is_root)
        self._any_of_conflicts(node, parts)
        self._children(node, parts, depth)

    def _children(self, node: dict[str, Any], parts: tuple[str, ...], depth: int) -> None:
        props = node.get("properties")
        if isinstance(props, dict):
            self.total_properties += len(props)
            if self.total_properties > MAX_PROPERTIES:
                self.fail(parts, f"total number of properties keys({self.total_properties}) "
                                 f"across all objects exceeds maximum limit of {MAX_PROPERTIES}")
            for name, child in props.items():
                if isinstance(child, dict):
                    self.node(child, (*parts, "properties", name), depth + 1)
        for key in ("items", "additionalProperties"):
            child = node.get(key)
            if isinstance(child, dict):
                self.node(child, (*parts, key), depth)
        branches = node.get("anyOf")
        if isinstance(branches, list):
            for child in branches:
                if isinstance(child, dict):
                    self.node(child, (*parts, "anyOf"), depth)

    def _defs(self, defs: Any, parts: tuple[str, ...], depth: int) -> None:
        where = (*parts, "$defs")
        if not isinstance(defs, dict):
            self.fail(where, "$defs must be an object")
            return
        for name, target in defs.items():
            if not name or "/" in name:
                reason = "cannot be empty" if not name else "cannot contain '/' character"
                self.fail(where, f"$defs property name {name!r} {reason}")
            if not isinstance(target, dict):
                self.fail(where, f"$defs schema must be object: {name}")
                continue
            slashed = next(_slashed_keys(target), None)
            if slashed is not None:
                self.fail(where, f"$defs property name '{slashed}' cannot contain '/' character")
            self.node(target, (*parts, "$defs", name), depth)

    def _type(self, node: dict[str, Any], parts: tuple[str, ...], is_root: bool) -> None:
        if "anyOf" in node:
            self.fail(parts, "when using anyOf, type should be defined in anyOf items "
                             "instead of the parent schema")
        if "$ref" in node:
            self.fail(parts, "when using $ref, type should be defined in the referenced "
                             "schema instead of the parent schema")
        kind = node["type"]
        if isinstance(kind, str):
            if kind not in JSON_TYPES:
                self.fail(parts, f"invalid type {kind!r} (the JSON Schema types are "
                                 f"{', '.join(sorted(JSON_TYPES))})")
                return
            types = [kind]
        elif isinstance(kind, list):
            if not kind:
                self.fail(parts, "type array cannot be empty")
                return
            bad = [k for k in kind if not isinstance(k, str) or k not in JSON_TYPES]
            if bad:
                self.fail(parts, f"invalid type in type array: {bad[0]!r}")
                return
            if self.ultra and len(set(kind)) != len(kind):
                self.fail((*parts, "type"), "duplicate types in type array")
            types = list(kind)
        else:
            self.fail(parts, "type must be string or array of strings")
            return
        with_enum = False
        if len(types) > 1:
            if "enum" in node and ("object" in types or "array" in types):
                self.fail(parts, "object and array cannot be used in combination with "
                                 "multiple types")
            with_enum = len(types) == 2 and "enum" in node
            allowed = COMMON | {"type"} | (ROOT_ONLY if is_root else frozenset())
            for key in sorted(node):
                if key not in allowed and not with_enum:
                    self.fail(parts, f"keyword {key} is not allowed in combination with "
                                     "multiple types")
        if not self.ultra:
            return
        if not is_root:
            for key in sorted(ROOT_ONLY & node.keys()):
                self.fail(parts, f"keyword {key} must be at root level")
        allowed = frozenset.intersection(*(ALLOWED[t] for t in types))
        if is_root:
            allowed |= ROOT_ONLY
        invalid = sorted(k for k in node if k not in allowed and k in SUPPORTED)
        if invalid:
            self.fail(parts, f"invalid keywords: {', '.join(invalid)}")
        integer = "integer" in types
        self._pair(node, parts, "minLength", "maxLength", allowed, count=True)
        self._pair(node, parts, "minimum", "maximum", allowed, count=False, integer=integer)
        self._pair(node, parts, "minItems", "maxItems", allowed, count=True)

    def _pair(self, node: dict[str, Any], parts: tuple[str, ...], low: str, high: str,
              allowed: frozenset[str], *, count: bool, integer: bool = False) -> None:
        if low not in allowed:
            return
        good = True
        for key in (low, high):
            if key not in node or node[key] is None:
                continue
            value = node[key]
            if not is_number(value) or not math.isfinite(value):
                self.fail(parts, f"{key} must be {'an integer' if count else 'a number'}")
                good = False
            elif (count or integer) and not float(value).is_integer():
                self.fail(parts, f"{key} must be an integer")
                good = False
            elif count and value < 0:
                self.fail(parts, f"{key} must be non-negative")
                good = False
        if good and is_number(node.get(low)) and is_number(node.get(high)) \
                and node[low] > node[high]:
            self.fail(parts, f"{low} ({node[low]}) cannot be greater than {high} ({node[high]})")

    # ------------------------------------------------------------------ keywords

    def _properties(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
                    is_root: bool) -> None:
        where = (*parts, "properties")
        if not isinstance(value, dict):
            self.fail(where, "properties must be an object")
            return
        for name, child in value.items():
            if self.ultra and name == "":
                self.fail(where, "property name cannot be empty")
            if name in RESERVED_NAMES:
                self.fail(where, f"property name '{name}' is reserved for JSON Schema keywords")
            if not isinstance(child, dict):
                self.fail(where, f"property schema for '{name}' must be an object")

    def _required(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
                  is_root: bool) -> None:
        where = (*parts, "required")
        if not isinstance(value, list):
            self.fail(where, "required must be an array")
            return
        if not value:
            return
        if not all(isinstance(name, str) for name in value):
            self.fail(where, "items in required array must be strings")
            return
        props = node.get("properties")
        if self.ultra:
            if "" in value:
                self.fail(where, "property names in required array cannot be empty")
            seen: set[str] = set()
            for name in value:
                if name in seen:
                    self.fail(where, f"duplicate items in required array: {name}")
                seen.add(name)
            if node.get("type") not in ("object", ["object"]):
                self.fail(where, "required keyword must be used with object")
            if not isinstance(props, dict):
                self.fail(where, "required specified but 'properties' keyword is missing")
                return
        known = props if isinstance(props, dict) else {}
        for name in value:
            if name not in known:
                self.fail(where, f"required property '{name}' is not defined in properties")

    def _enum(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
              is_root: bool) -> None:
        where = (*parts, "enum")
        if not isinstance(value, list):
            self.fail(where, "enum must be an array")
            return
        if not value:
            self.fail(where, "enum array cannot be empty")
            return
        if len(value) > MAX_ENUM_ITEMS:
            self.fail(where, f"enum array cannot have more than {MAX_ENUM_ITEMS} items")
        if "type" not in node:
            self.fail(parts, "type is not defined")
            return
        types = type_list(node)
        if types is None:
            return  # reported by _type
        if len(types) > 2 or (len(types) == 2 and "null" not in types):
            self.fail(parts, "when type is array and enum is specified, currently only 2 types "
                             "are supported, one must be null, and the other can be "
                             "string/integer/number/boolean")
            return
        other = next((t for t in types if t != "null"), "null")
        if len(types) == 2 and other not in ("string", "integer", "number", "boolean"):
            self.fail(parts, f"invalid type combination with enum: {other} + null")
            return
        for item in value:
            if not any(matches(item, t) for t in types):
                shown = json.dumps(item, ensure_ascii=False, default=str)
                self.fail(where, f"enum value ({shown}) does not match any type in {types}")
                return
            if self.ultra and is_number(item) and float(item).is_integer() \
                    and abs(item) > MAX_SAFE_INTEGER:
                self.fail(where, f"enum value ({item}) is outside the integer range "
                                 f"[-(2**53 - 1), 2**53 - 1]")
                return
        if len(value) > ENUM_TEXT_THRESHOLD and ({"string", "number", "integer"} & set(types)):
            total = sum(len(v) if isinstance(v, str) else len(str(v)) for v in value
                        if isinstance(v, str) or is_number(v))
            if total > MAX_ENUM_TEXT:
                self.fail(where, f"total string length of enum values ({total}) exceeds "
                                 f"maximum limit of {MAX_ENUM_TEXT} characters when enum has "
                                 f"more than {ENUM_TEXT_THRESHOLD} values")

    def _items(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
               is_root: bool) -> None:
        if not isinstance(value, dict):
            self.fail((*parts, "items"), "items must be an object")

    def _ref(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
             is_root: bool) -> None:
        where = (*parts, "$ref")
        if not isinstance(value, str):
            self.fail(where, "$ref must be a string")
            return
        if value == "#":  # walle checks nothing more for a reference to the root
            self.refs.add(value)
            return
        if not value.startswith("#/$defs/"):
            self.fail(where, "references must start with #/$defs/")
            return
        if value == "#/$defs/":
            self.fail(where, "definition name cannot be empty")
            return
        if "$defs" not in self.root:
            self.fail(where, f"$defs not found for reference: {value}")
            return
        self._siblings(node, parts, is_root, "$ref")
        self.refs.add(value)

    def _siblings(self, node: dict[str, Any], parts: tuple[str, ...], is_root: bool,
                  keyword: str) -> None:
        if not self.ultra:
            return
        for key in sorted(node):
            if key == keyword or key in COMMON or (is_root and key in ROOT_ONLY):
                continue
            if key == "type":
                continue  # reported by _type
            self.fail(parts, f"keyword '{key}' is not allowed at the same level as {keyword}")

    def _string(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
                is_root: bool, *, key: str) -> None:
        if not isinstance(value, str) and not (value is None and key != "description"):
            self.fail((*parts, key), f"{key} must be a string")

    def _any_of(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
                is_root: bool) -> None:
        where = (*parts, "anyOf")
        if not isinstance(value, list):
            self.fail(where, "anyOf must be an array")
            return
        if not value or len(value) > MAX_ANY_OF:
            self.fail(where, f"anyOf must have 1-{MAX_ANY_OF} items")
        if not all(isinstance(branch, dict) for branch in value):
            self.fail(where, "schema in anyOf must be an object")
        self._siblings(node, parts, is_root, "anyOf")

    def _additional(self, node: dict[str, Any], value: Any, parts: tuple[str, ...],
                    is_root: bool) -> None:
        if not isinstance(value, bool | dict):
            self.fail((*parts, "additionalProperties"),
                      "additionalProperties must be a boolean or an object")

    def _any_of_conflicts(self, node: dict[str, Any], parts: tuple[str, ...]) -> None:
        branches = node.get("anyOf")
        if not isinstance(branches, list):
            return
        outer = set(node) - {"anyOf"}
        for branch in branches:
            if not isinstance(branch, dict):
                continue
            clash = sorted(k for k in outer & branch.keys() if self.ultra or k not in COMMON)
            if clash:
                self.fail(parts, "conflicting keywords found in anyOf with parent: keywords "
                                 f"({', '.join(clash)}) are defined on the parent schema and "
                                 "inside anyOf; remove them from the parent or from anyOf "
                                 "branches")
                return


def _slashed_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if "/" in key:
                yield key
            yield from _slashed_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _slashed_keys(item)


def _string_check(key: str) -> Any:
    def check(self: _Checker, node: dict[str, Any], value: Any, parts: tuple[str, ...],
              is_root: bool) -> None:
        self._string(node, value, parts, is_root, key=key)
    return check


_KEYWORDS: dict[str, Any] = {
    "properties": _Checker._properties,
    "required": _Checker._required,
    "enum": _Checker._enum,
    "items": _Checker._items,
    "$ref": _Checker._ref,
    "description": _string_check("description"),
    "$id": _string_check("$id"),
    "pattern": _string_check("pattern"),
    "anyOf": _Checker._any_of,
    "additionalProperties": _Checker._additional,
}
