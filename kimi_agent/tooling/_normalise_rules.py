"""The rewriting rules of `_normalise.py`, one small function each: what a keyword the
dialect lacks becomes, how an `anyOf`, a tuple, a type list or a default is made to fit."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from kimi_agent.tooling._mfjs import (
    ALLOWED,
    COMMON,
    JSON_TYPES,
    SUPPORTED,
    json_type,
    matches,
    type_list,
)

# Schema keywords first in this order; any other keyword follows in alphabetical order.
# Property names keep their order.
_KEY_ORDER = (
    "type", "description", "enum", "minLength", "maxLength", "minimum", "maximum",
    "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "anyOf", "$ref", "default", "title",
)
_RANK = {key: i for i, key in enumerate(_KEY_ORDER)}
_JSON_TYPE_ORDER = ("string", "integer", "number", "boolean", "null", "array", "object")


def _recursive(defs: Mapping[str, Any]) -> set[str]:
    """The definitions that can reach themselves through references."""
    edges: dict[str, set[str]] = {}
    for name, target in defs.items():
        found: set[str] = set()
        _refs_in(target, found)
        edges[name] = {n for n in map(_ref_name, found) if n is not None}
    out: set[str] = set()
    for start in edges:
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            name = todo.pop()
            if name == start:
                out.add(start)
                break
            if name in seen or name not in edges:
                continue
            seen.add(name)
            todo.extend(edges[name])
    return out


def _refs_in(node: Any, found: set[str]) -> None:
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):
                _refs_in(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs_in(item, found)


def _ref_name(ref: str) -> str | None:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix) and "/" not in ref[len(prefix):]:
            return unquote(ref[len(prefix):])
    return None


def _mergeable(node: Mapping[str, Any], branches: list[Any]) -> bool:
    """Whether an `allOf` can be folded into its parent without changing its meaning."""
    seen = set(node) - {"allOf"}
    for branch in branches:
        for key in branch:
            if key in seen and key not in ("properties", "required", "description", "title"):
                return False
            seen.add(key)
    return True


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`; properties and required lists are united."""
    out = {**base, **extra}
    if isinstance(base.get("properties"), Mapping) and isinstance(extra.get("properties"),
                                                                  Mapping):
        out["properties"] = {**base["properties"], **extra["properties"]}
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        out["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return out


def _fit(node: dict[str, Any]) -> dict[str, Any]:
    """Drop keywords that do not apply to the node's (single) type, e.g. `minLength` on an
    integer branch after a parent's keywords were copied into every branch."""
    kinds = type_list(node)
    if kinds is None or len(kinds) != 1:
        return node
    allowed = ALLOWED[kinds[0]]
    return {k: v for k, v in node.items() if k in allowed or k not in SUPPORTED}


def _type_enum(node: dict[str, Any]) -> None:
    """An enum without a type gets the type of its values (an `anyOf` when they differ)."""
    values = node.get("enum")
    if "type" in node or "anyOf" in node or not isinstance(values, list) or not values:
        return
    by_type: dict[str, list[Any]] = {}
    for value in values:
        by_type.setdefault(json_type(value), []).append(value)
    if "integer" in by_type and "number" in by_type:
        by_type["number"] = [v for v in values if json_type(v) in ("integer", "number")]
        del by_type["integer"]
    if len(by_type) == 1:
        (node["type"],) = by_type
        return
    del node["enum"]
    node["anyOf"] = [
        {"type": name, "enum": by_type[name]} for name in _JSON_TYPE_ORDER if name in by_type
    ]


def _enum_into_items(node: dict[str, Any]) -> None:
    """An enum of item values put on the array itself (a common slip) moves to `items`."""
    values = node.get("enum")
    items = node.get("items")
    if node.get("type") != "array" or not isinstance(values, list) or not values:
        return
    if isinstance(items, dict) and "enum" not in items and "anyOf" not in items:
        kinds = type_list(items)
        if kinds is not None and all(any(matches(v, k) for k in kinds) for v in values):
            node["items"] = _ordered({**items, "enum": node.pop("enum")})
            return
    if all(isinstance(v, list) for v in values):
        node["description"] = _describe(node.get("description"),
                                        [f"one of {_show(node.pop('enum'))}"])


def _bounds(node: dict[str, Any], notes: list[str]) -> None:
    """Exclusive bounds of integers become inclusive ones; those of numbers become notes."""
    integer = node.get("type") == "integer"
    for key, inclusive, step in (("exclusiveMinimum", "minimum", 1),
                                 ("exclusiveMaximum", "maximum", -1)):
        value = node.get(key)
        if integer and isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            bound = (math.floor(value) + 1) if step > 0 else (math.ceil(value) - 1)
            current = node.get(inclusive)
            if isinstance(current, int | float) and not isinstance(current, bool):
                bound = max(bound, math.ceil(current)) if step > 0 \
                    else min(bound, math.floor(current))
            node[inclusive] = bound
            node.pop(key)
    if integer:
        for key, rounding in (("minimum", math.ceil), ("maximum", math.floor)):
            value = node.get(key)
            if isinstance(value, float) and math.isfinite(value):
                node[key] = int(rounding(value))


def _split_types(node: dict[str, Any]) -> dict[str, Any]:
    """`"type": [a, b]` with keywords for some of them → one `anyOf` branch per type."""
    kinds = type_list(node)
    if kinds is None or len(kinds) < 2:
        return node
    extra = set(node) - COMMON - {"type", "default"}
    if not extra or (extra == {"enum"} and len(kinds) == 2 and "null" in kinds):
        return node
    branches = []
    for kind in kinds:
        branch = {k: v for k, v in node.items()
                  if k not in COMMON and k != "default" and k in ALLOWED[kind] | {"enum"}}
        branch["type"] = kind
        if isinstance(branch.get("enum"), list):
            branch["enum"] = [v for v in branch["enum"] if matches(v, kind)]
            if not branch["enum"]:
                continue
        branches.append(_ordered(branch))
    out = {k: v for k, v in node.items() if k in COMMON or k == "default"}
    out["anyOf"] = branches
    return out


def _default(node: dict[str, Any], notes: list[str]) -> None:
    """A default stays when it is a literal of the node's type, else it becomes a note."""
    if "default" not in node:
        return
    value = node["default"]
    kinds = type_list(node)
    literal = value is None or isinstance(value, bool | int | float | str)
    if literal and kinds is not None and "anyOf" not in node and \
            any(matches(value, k) for k in kinds):
        return
    if value is None and "anyOf" in node:
        del node["default"]  # an optional argument: not being required says it
        return
    notes.append(f"Default: {_show(node.pop('default'))}")


def _root_object(node: dict[str, Any]) -> dict[str, Any]:
    """A root `anyOf` of object schemas → one object schema (the arguments are always one
    JSON object): properties united, only what every branch requires is required, and the
    description says which combinations are expected. The validator of the arguments keeps
    the exact rule."""
    branches = node["anyOf"]
    if not branches or not all(isinstance(b, dict) and b.get("type") == "object"
                               and set(b) <= ALLOWED["object"] - {"anyOf", "$ref"}
                               for b in branches):
        return node
    props: dict[str, Any] = {}
    for branch in branches:
        for name, child in (branch.get("properties") or {}).items():
            if name not in props:
                props[name] = child
            elif props[name] != child:
                existing = props[name].get("anyOf") if set(props[name]) == {"anyOf"} \
                    else [props[name]]
                props[name] = {"anyOf": [*existing, child]}
    required_sets = [list(b.get("required") or []) for b in branches]
    common = [n for n in required_sets[0] if all(n in r for r in required_sets[1:])]
    out: dict[str, Any] = {"type": "object", "properties": props}
    if common:
        out["required"] = common
    if all(b.get("additionalProperties") is False for b in branches):
        out["additionalProperties"] = False
    forms = "; or ".join(", ".join(r) if r else "no required argument" for r in required_sets)
    note = f"Arguments of one of these forms: {forms}" if len(
        {tuple(r) for r in required_sets}) > 1 else ""
    description = _describe(node.get("description"), [note])
    if description:
        out["description"] = description
    if "title" in node:
        out["title"] = node["title"]
    return _ordered(out)


def _note(key: str, value: Any) -> str:
    text = _show(value)
    return {
        "format": f"format: {value}",
        "pattern": f"must match the regular expression {text}",
        "multipleOf": f"a multiple of {text}",
        "uniqueItems": "items must be unique" if value is True else "items need not be unique",
        "minProperties": f"at least {text} entries",
        "maxProperties": f"at most {text} entries",
        "exclusiveMinimum": f"greater than {text}",
        "exclusiveMaximum": f"less than {text}",
        "examples": f"examples: {text}",
        "deprecated": "deprecated" if value is True else "",
    }.get(key, f"{key}: {text}")


def _describe(description: Any, notes: list[str]) -> str:
    notes = [n for n in notes if n]
    text = description if isinstance(description, str) else ""
    if not notes:
        return text
    joined = "; ".join(dict.fromkeys(notes))
    return f"{text} ({joined})" if text else joined[:1].upper() + joined[1:]


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _kind_of(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return "any"
    kind = schema.get("type")
    if isinstance(kind, str) and kind in JSON_TYPES:
        return kind
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if "enum" in schema:
        return f"one of {_show(schema['enum'])}"
    if isinstance(schema.get("anyOf"), list):
        return " or ".join(_kind_of(b) for b in schema["anyOf"])
    return "any"


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    return {
        key: node[key]
        for key in sorted(node, key=lambda k: (_RANK.get(k, len(_RANK)), k))
    }
