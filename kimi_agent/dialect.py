"""Moonshot's JSON-schema dialect for tool parameters (KIMI_WIRE.md, "Tool schemas").

`check_moonshot` lists every place a schema breaks the dialect, in the form Moonshot uses in
its 400 messages (`At path '...': ...`). The registry normalises every schema it generates so
that this list is empty; the simulator refuses any request whose tools produce a problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

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
