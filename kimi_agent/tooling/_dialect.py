"""Moonshot's JSON-schema dialect for tool parameters (docs/wire/schema-dialect.md).

`check_moonshot` lists every place a schema breaks the dialect, in the form Moonshot uses in
its 400 messages (`At path '...': ...`). `to_moonshot` rewrites a standard JSON schema (as
pydantic or another service produces it) into the dialect; the registry passes every schema
through it, so that `check_moonshot` finds nothing. The simulator refuses any request whose
tools produce a problem.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_SINGLES = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def check_tool_name(name: str) -> str | None:
    if TOOL_NAME_RE.match(name):
        return None
    return (
        f"tool name {name!r} must match {TOOL_NAME_RE.pattern} "
        "(letters, digits, '_' or '-', not starting with a digit, at most 64 characters)"
    )


def check_moonshot(schema: Any) -> list[str]:
    """Every way `schema` (a tool's `parameters`) breaks Moonshot's dialect; [] if none."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return ["At path '': the parameters schema must be an object"]
    if schema.get("type") != "object":
        problems.append("At path '': the root schema must have type 'object'")
    if not isinstance(schema.get("properties"), dict):
        problems.append("At path '': the root schema must have 'properties'")
    problems.extend(_check_node(schema, "", is_property=False))
    return problems


def _check_node(node: Any, path: str, *, is_property: bool) -> Iterator[str]:
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        yield f"At path '{path}': a schema must be an object"
        return
    if "$ref" in node:
        yield f"At path '{path}': '$ref' is not supported, inline the definition"
    for key in ("$defs", "definitions"):
        if key in node:
            yield f"At path '{path}': '{key}' is not supported, inline the definitions"
    if "title" in node:
        yield f"At path '{path}': 'title' is not allowed"
    has_union = "anyOf" in node or "oneOf" in node
    if has_union and "type" in node:
        yield f"At path '{path}': 'type' must not stand beside 'anyOf', move it into the branches"
    if is_property and not has_union and "type" not in node and "allOf" not in node:
        yield f"At path '{path}': type is not defined"
    if "items" in node and not isinstance(node["items"], dict | bool):
        yield f"At path '{path}.items': 'items' must be a schema object, use 'prefixItems'"
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _check_node(child, _join(path, f"{key}.{name}"), is_property=True)
    for key in _SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                yield from _check_node(child, _join(path, f"{key}.{i}"), is_property=True)
    for key in _SCHEMA_SINGLES:
        child = node.get(key)
        if isinstance(child, dict):
            yield from _check_node(child, _join(path, key), is_property=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- normalisation

# Schema keywords first in this order (the type and description lead, data-like keywords
# close); any other keyword follows in alphabetical order. Property names keep their order.
_KEY_ORDER = (
    "type", "description", "enum", "const", "format", "pattern", "minLength", "maxLength",
    "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf",
    "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
    "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains",
    "minContains", "maxContains", "anyOf", "oneOf", "allOf", "not", "if", "then", "else",
    "default", "examples",
)
_RANK = {key: i for i, key in enumerate(_KEY_ORDER)}
_DROPPED = ("title", "$schema", "$defs", "definitions", "discriminator")
_MAP_KEYWORDS = ("properties", "patternProperties", "dependentSchemas")
_LIST_KEYWORDS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SINGLE_KEYWORDS = (
    "items", "additionalProperties", "propertyNames", "not", "if", "then", "else", "contains",
    "unevaluatedItems", "unevaluatedProperties", "contentSchema",
)
_JSON_TYPE_ORDER = ("string", "integer", "number", "boolean", "null", "array", "object")


def to_moonshot(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` rewritten into Moonshot's dialect; the input is left untouched.

    - every local `$ref` is replaced by a copy of its target, keys beside the `$ref` merged
      over that copy (they win); `$defs` / `definitions` disappear. A recursive definition
      cannot be inlined and raises `ValueError`, as does a `$ref` outside the document;
    - an `allOf` with a single branch is merged into its parent;
    - a `type` beside `anyOf` / `oneOf` moves into the branches that have none;
    - an enum-only or const schema gets the JSON type of its values (values of several types
      become an `anyOf` with one typed branch per type);
    - a list-valued `items` becomes `prefixItems` (`additionalItems` becomes `items`);
    - an empty `items` schema is dropped and an empty `additionalProperties` becomes `true`
      (both mean "anything", and the dialect wants a type on every schema object);
    - `title`, `$schema` and `discriminator` are dropped;
    - keys come in a fixed order, so equal input gives byte-identical JSON.
    """
    normalised = _normalise(schema, schema, (), "")
    if not isinstance(normalised, dict):  # pragma: no cover - a Mapping stays a dict
        raise ValueError("a schema must be an object")
    out: dict[str, Any] = normalised
    if out.get("type") == "object" and "properties" not in out:
        out["properties"] = {}
        out = _ordered(out)
    return out


def _normalise(node: Any, root: Mapping[str, Any], refs: tuple[str, ...], path: str) -> Any:
    if not isinstance(node, Mapping):
        return copy.deepcopy(node)
    node = dict(node)
    while True:
        if "$ref" in node:
            ref = node.pop("$ref")
            if not isinstance(ref, str):
                raise ValueError(f"At path '{path}': '$ref' must be a string")
            if ref in refs:
                raise ValueError(
                    f"At path '{path}': {ref!r} refers to itself; "
                    "a recursive schema cannot be inlined"
                )
            refs = (*refs, ref)
            node = {**_resolve(root, ref, path), **node}
        elif _is_single_all_of(node):
            (branch,) = node.pop("allOf")
            node = {**branch, **node}
        else:
            break
    for key in _DROPPED:
        node.pop(key, None)
    if isinstance(node.get("items"), list):
        node["prefixItems"] = node.pop("items")
        if "additionalItems" in node:
            node["items"] = node.pop("additionalItems")
    for key in _MAP_KEYWORDS:
        children = node.get(key)
        if isinstance(children, Mapping):
            node[key] = {
                name: _normalise(child, root, refs, _join(path, f"{key}.{name}"))
                for name, child in children.items()
            }
    for key in _LIST_KEYWORDS:
        children = node.get(key)
        if isinstance(children, list):
            node[key] = [
                _normalise(child, root, refs, _join(path, f"{key}.{i}"))
                for i, child in enumerate(children)
            ]
    for key in _SINGLE_KEYWORDS:
        if key in node:
            node[key] = _normalise(node[key], root, refs, _join(path, key))
    if node.get("items") == {}:
        del node["items"]
    if node.get("additionalProperties") == {}:
        node["additionalProperties"] = True
    _type_enum(node)
    _type_into_branches(node)
    return _ordered(node)


def _is_single_all_of(node: dict[str, Any]) -> bool:
    branches = node.get("allOf")
    return isinstance(branches, list) and len(branches) == 1 and isinstance(branches[0], dict)


def _resolve(root: Mapping[str, Any], ref: str, path: str) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"At path '{path}': cannot inline {ref!r}, only local '#/...' refs")
    target: Any = root
    pointer = unquote(ref[1:])
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise ValueError(f"At path '{path}': {ref!r} points to nothing")
    if target is root:
        raise ValueError(f"At path '{path}': {ref!r} refers to the whole schema (recursion)")
    if isinstance(target, bool):
        return {} if target else {"not": {}}
    if not isinstance(target, Mapping):
        raise ValueError(f"At path '{path}': {ref!r} does not point to a schema")
    return dict(target)


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


def _type_enum(node: dict[str, Any]) -> None:
    if "type" in node or "anyOf" in node or "oneOf" in node:
        return
    if "const" in node:
        node["type"] = json_type(node["const"])
        return
    values = node.get("enum")
    if not isinstance(values, list) or not values:
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


def _type_into_branches(node: dict[str, Any]) -> None:
    if "type" not in node or not ("anyOf" in node or "oneOf" in node):
        return
    parent_type = node.pop("type")
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list):
            node[key] = [
                _ordered({**branch, "type": parent_type})
                if isinstance(branch, dict) and "type" not in branch
                and "anyOf" not in branch and "oneOf" not in branch
                else branch
                for branch in branches
            ]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    return {
        key: node[key]
        for key in sorted(node, key=lambda k: (_RANK.get(k, len(_RANK)), k))
    }
