"""An independent oracle of Moonshot's tool-schema validator, MoonshotAI/walle (Go, MIT).

Moonshot's server checks every tool's `parameters` (and a `response_format` JSON schema) with
walle and refuses what it rejects. This module re-implements walle's rules in Python from
its documentation (`docs/walle.md`, `docs/mfjs-spec.md`, `docs/mfjs-walle-vs-draft-2020-12.md`)
and from the behaviour of its validator and test data, so that the simulator can judge a
schema without asking the client's own dialect code (`kimi_agent`'s checker must be free to
disagree with it, and a test shows where it does).

`validate(schema, level)` returns None or the first `SchemaProblem`, whose `str()` is
walle's own error text: `At path 'properties.x': required property 'y' is not defined in
properties`. Levels, as in walle:
- "lite": the structural rules only;
- "strict" ("the most permissive level required by Moonshot AI server"): lite plus reserved
  property names and the multiple-types rule — what the simulator enforces;
- "ultra" (walle's default): strict plus the keyword whitelist per type, root-only `$defs` /
  `$id`, min/max ranges, duplicates, `description`/`title` conflicts.

Where walle's documents and its code differ, the code wins (it is what the server runs): a
`{}` inside `properties` is accepted, `title` is not type-checked, the limits are the code's
defaults (`Limits`). Where walle's result depends on Go's random map order (termination of
recursive `$ref`s), the more permissive reading is taken, so the oracle never refuses what
walle may accept.
"""

from __future__ import annotations

import json
from typing import Any

from ._walle_refs import RefChecks
from ._walle_rules import (
    BY_TYPE,
    COMMON,
    KEYWORDS,
    ROOT,
    SUPPORTED,
    TOP_ONLY,
    TYPES,
    Level,
    Limits,
    Path,
    SchemaProblem,
    at,
    go_repr,
    is_num,
)

__all__ = ["Level", "Limits", "SchemaProblem", "validate"]
_REF_CONTEXTS = ("additionalProperties", "anyOf", "items")


def validate(
    schema: Any, level: Level = "strict", limits: Limits | None = None
) -> SchemaProblem | None:
    """The first problem walle at `level` finds in `schema` (parsed JSON), or None."""
    try:
        _Walk(schema, level, limits or Limits()).run()
    except SchemaProblem as problem:
        return problem
    return None


class _Walk(RefChecks):
    """One validation run (walle's `schemaValidator` state: refs seen, property count)."""

    def __init__(self, schema: Any, level: Level, limits: Limits) -> None:
        self.root = schema
        self.level = level
        self.limits = limits
        self.ultra = level == "ultra"
        self.strict = level in ("strict", "ultra")
        self.refs: dict[str, None] = {}
        self.total_props = 0
        self.def_depths: dict[str, int] = {}

    @staticmethod
    def fail(message: str, path: Path) -> SchemaProblem:
        return SchemaProblem(message, path)

    # ------------------------------------------------------------------ entry

    def run(self) -> None:
        root = self.root
        if root is None:
            raise self.fail("schema must be a dict", ROOT)
        if not isinstance(root, dict):
            raise self.fail("JSON schema parsing error: the schema must be a JSON object", ROOT)
        if not root:
            return  # {} is ANY
        size = len(json.dumps(root, ensure_ascii=False, separators=(",", ":")).encode())
        if size > self.limits.max_size:
            raise self.fail("schema exceeds maximum allowed size", ROOT)
        self.def_depths = self._def_depths()
        depth = self.traverse(root, ROOT, 0)
        if depth > self.limits.max_depth:
            raise self.fail(f"schema depth exceeds maximum limit of {self.limits.max_depth}", ROOT)
        self._post_refs()

    # ------------------------------------------------------------------ traversal

    def traverse(self, node: dict[str, Any], path: Path, depth: int) -> int:
        deepest = depth
        if depth > self.limits.max_depth:
            raise self.fail(f"schema depth exceeds maximum limit of {self.limits.max_depth}", path)
        unsupported = sorted(k for k in node if k not in SUPPORTED)
        if unsupported and self.ultra:
            raise self.fail(f"unsupported keywords: {', '.join(unsupported)}", path)
        defs = node.get("$defs")
        if isinstance(defs, dict):
            for name in sorted(defs):
                if not isinstance(defs[name], dict):
                    raise self.fail("$defs schema must be object", at(path, "$defs"))
                deepest = max(deepest, self.traverse(defs[name], at(path, "$defs", name), depth))
        if "type" in node:
            if "anyOf" in node:
                raise self.fail(
                    "when using anyOf, type should be defined in anyOf items instead of the "
                    "parent schema",
                    path,
                )
            if "$ref" in node:
                raise self.fail(
                    "when using $ref, type should be defined in the referenced schema instead "
                    "of the parent schema",
                    path,
                )
            kinds = node["type"]
            if isinstance(kinds, list) and len(kinds) > 1 and "enum" in node:
                for kind in kinds:
                    if kind in ("object", "array"):
                        raise self.fail(
                            f"type {kind} is not allowed in combination with enum", path
                        )
        self._type_and_keywords(node, path)
        for keyword in sorted(node):
            check = KEYWORDS.get(keyword)
            if check is not None:
                check(self, node, node[keyword], at(path, keyword), path)
        self._any_of_conflicts(node, path)
        ref = node.get("$ref")
        if isinstance(ref, str):
            deepest = max(deepest, depth + self.def_depths.get(ref, 0))
        props = node.get("properties")
        if isinstance(props, dict):
            self.total_props += len(props)
            if self.total_props > self.limits.max_total_properties:
                raise self.fail(
                    f"total number of properties keys({self.total_props}) across all objects "
                    f"exceeds maximum limit of {self.limits.max_total_properties}",
                    path,
                )
            for name, sub in props.items():
                if isinstance(sub, dict):
                    deepest = max(
                        deepest, self.traverse(sub, at(path, "properties", name), depth + 1)
                    )
        for key in ("items", "additionalProperties"):
            sub = node.get(key)
            if isinstance(sub, dict):
                deepest = max(deepest, self.traverse(sub, at(path, key), depth))
        branches = node.get("anyOf")
        if isinstance(branches, list):
            for i, sub in enumerate(branches):
                if isinstance(sub, dict):
                    deepest = max(deepest, self.traverse(sub, at(path, f"anyOf{{{i}}}"), depth))
        return deepest

    def _type_and_keywords(self, node: dict[str, Any], path: Path) -> None:
        if "type" not in node:
            return
        value = node["type"]
        kinds: list[str] = []
        if isinstance(value, str):
            if value not in TYPES:
                raise self.fail("invalid type", path)
            kinds = [value]
        elif isinstance(value, list):
            for item in value:
                if not isinstance(item, str) or item not in TYPES:
                    raise self.fail("invalid type in type array", path)
                kinds.append(item)
            if not kinds:
                raise self.fail("type array cannot be empty", path)
        if len(kinds) > 1:
            with_enum = False
            if len(kinds) == 2 and node.get("enum") is not None:
                if "object" in kinds or "array" in kinds:
                    raise self.fail(
                        "object and array cannot be used in combination with multiple types", path
                    )
                with_enum = True
            if self.strict and not with_enum:
                allowed = COMMON | {"type"} | (TOP_ONLY if path == ROOT else frozenset())
                for key in sorted(node):
                    if key not in allowed:
                        raise self.fail(
                            f"keyword {key} is not allowed in combination with multiple types",
                            path,
                        )
        if kinds and self.ultra:
            if path != ROOT:
                for key in sorted(node):
                    if key in TOP_ONLY:
                        raise self.fail(f"keyword {key} must be at root level", path)
            allowed_sets = [BY_TYPE[kind] | COMMON for kind in kinds]
            allowed = frozenset.intersection(*allowed_sets)
            if path == ROOT:
                allowed |= TOP_ONLY
            invalid = sorted(k for k in node if k not in allowed)
            if invalid:
                raise self.fail(f"invalid keywords: {', '.join(invalid)}", path)
            self._ranges(node, path, allowed, integer="integer" in kinds)

    def _ranges(
        self, node: dict[str, Any], path: Path, allowed: frozenset[str], *, integer: bool
    ) -> None:
        pairs = (("minLength", "maxLength", True), ("minItems", "maxItems", True))
        for low, high, counts in pairs:
            if (low in node or high in node) and low in allowed:
                self._count_pair(node, path, low, high, at_low=counts)
        if ("minimum" in node or "maximum" in node) and "minimum" in allowed:
            for key in ("minimum", "maximum"):
                if node.get(key) is None:
                    continue
                value = node[key]
                kind = "an integer" if integer else "a number"
                if not is_num(value):
                    raise self.fail(f"{key} must be {kind}", path)
                if integer and not float(value).is_integer():
                    raise self.fail("not a valid integer", path)
            lo, hi = node.get("minimum"), node.get("maximum")
            if lo is not None and hi is not None and lo > hi:
                raise self.fail(
                    f"minimum ({go_repr(lo)}) cannot be greater than maximum ({go_repr(hi)})",
                    path,
                )

    def _count_pair(
        self, node: dict[str, Any], path: Path, low: str, high: str, *, at_low: bool
    ) -> None:
        for key in (low, high):
            value = node.get(key)
            if value is None:
                continue
            if not is_num(value):
                raise self.fail(f"{key} must be an integer", path)
            if value < 0:
                raise self.fail(f"{key} must be non-negative", path)
            if not float(value).is_integer():
                raise self.fail("not a valid integer", path)
        a, b = node.get(low), node.get(high)
        if a is not None and b is not None and a > b:
            raise self.fail(
                f"{low} ({go_repr(a)}) cannot be greater than {high} ({go_repr(b)})",
                at(path, low) if at_low else path,
            )

    def _any_of_conflicts(self, node: dict[str, Any], path: Path) -> None:
        if "anyOf" not in node:
            return
        outer = {k for k in node if k != "anyOf"}
        branches = node["anyOf"]
        if not isinstance(branches, list):
            raise self.fail("anyOf must be an array", at(path, "anyOf"))
        for branch in branches:
            if not isinstance(branch, dict):
                raise self.fail("schema in anyOf must be an object", at(path, "anyOf"))
            clash = sorted(k for k in branch if k in outer and (self.ultra or k not in COMMON))
            if clash:
                raise self.fail(
                    "conflicting keywords found in anyOf with parent: keywords "
                    f"({', '.join(clash)}) are defined on the parent schema and inside anyOf; "
                    "remove them from the parent or from anyOf branches",
                    path,
                )
