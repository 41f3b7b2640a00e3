"""walle's `$ref` rules, for the oracle in `_walle.py`: resolution, depth through `$defs`,
termination of recursive references, chained-reference expansion and where a `$ref` may stand.

A mixin of the oracle's walk: it needs `root`, `ultra` and `refs` (the references recorded
while walking) from the class it is mixed into.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from ._walle_rules import COMMON, ROOT, Path, SchemaProblem, at

__all__ = ["RefChecks"]

_REF_CONTEXTS = ("additionalProperties", "anyOf", "items")


class RefChecks:
    """The `$ref` half of a walle validation run."""

    root: Any
    ultra: bool
    refs: dict[str, None]

    @staticmethod
    def fail(message: str, path: Path) -> SchemaProblem:
        return SchemaProblem(message, path)

    def resolve(self, ref: str, path: Path = ROOT) -> dict[str, Any]:
        if ref == "#":
            return self.root  # type: ignore[no-any-return]
        if not ref.startswith("#/$defs/"):
            raise self.fail("only local references are supported", at(path, "$ref"))
        current: Any = self.root
        for part in ref[2:].split("/"):
            current = current.get(part) if isinstance(current, dict) else None
            if not isinstance(current, dict):
                raise self.fail(f"invalid $ref path: {ref}", path)
        return current  # type: ignore[no-any-return]

    def _def_depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}

        def walk(node: dict[str, Any], where: str, seen: set[str]) -> int:
            if not node:
                return 0
            depths[where] = 0
            deepest = 0
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                with contextlib.suppress(SchemaProblem):
                    deepest = walk(self.resolve(ref), ref, seen)
            props = node.get("properties")
            if isinstance(props, dict):
                level = 1
                for name, sub in props.items():
                    if isinstance(sub, dict):
                        level = max(level, 1 + walk(sub, f"{where}/properties/{name}", set(seen)))
                deepest = max(deepest, level)
            branches = node.get("anyOf")
            if isinstance(branches, list):
                for i, sub in enumerate(branches):
                    if isinstance(sub, dict):
                        deepest = max(deepest, walk(sub, f"{where}/anyOf/{i}", set(seen)))
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                deepest = max(deepest, walk(extra, f"{where}/additionalProperties", set(seen)))
            depths[where] = deepest
            return deepest

        defs = self.root.get("$defs")
        if isinstance(defs, dict):
            for name in sorted(defs):
                if isinstance(defs[name], dict):
                    walk(defs[name], f"#/$defs/{name}", set())
        return depths

    def _post_refs(self) -> None:
        for ref in self.refs:
            try:
                self.resolve(ref)
            except SchemaProblem:
                raise self.fail(f"invalid $ref path: {ref}", ROOT) from None
        try:
            check = not self.terminates(self.root, set(), ROOT)
        except SchemaProblem:
            check = True
        self._check_refs(self.root, check, ROOT)

    def _check_refs(self, node: dict[str, Any], check: bool, path: Path) -> None:
        if "$ref" in node:
            expanded = self._expand(node, path)
            self._ref_context(node, expanded, path)
            if check and not self.terminates(expanded, set(), path):
                raise self.fail("detected infinite recursion without termination condition", path)
        # walle turns the check off for the keys it visits after an `additionalProperties`
        # schema or after `properties` beside an empty `required`, in Go's random map order;
        # the permissive reading (those keys first) turns it off for the whole node.
        if isinstance(node.get("additionalProperties"), dict) or (
            isinstance(node.get("properties"), dict) and node.get("required") == []
        ):
            check = False
        for key, value in node.items():
            if key == "$defs":
                continue
            here = at(path, key)
            if isinstance(value, dict):
                self._check_refs(value, check, here)
            elif isinstance(value, list) and key == "anyOf":
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        self._check_refs(item, check, (*here[:-1], f"anyOf{{{i}}}"))

    def terminates(self, node: dict[str, Any], seen: set[str], path: Path) -> bool:
        """Whether a finite instance of `node` exists (walle's `CheckRefTermination`)."""
        kind = ""
        value = node.get("type")
        for item in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(item, str) and item not in ("object", "array"):
                return True
            kind = str(item)
        if kind == "array":
            items = node.get("items")
            if items is None or items == {}:
                return True
            if isinstance(items, dict) and self.terminates(items, seen, at(path, "items")):
                return True
        if kind == "object":
            required = node.get("required")
            props = node.get("properties")
            if not required or not isinstance(props, dict) or not props:
                return True
            names = (
                {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
            )
            for name, sub in props.items():
                if not isinstance(sub, dict):
                    raise self.fail("property schema must be an object", at(path, name))
                if name in names and self.terminates(sub, set(seen), at(path, "properties", name)):
                    return True
        branches = node.get("anyOf")
        if isinstance(branches, list):
            if not branches:
                return True
            gathered: set[str] = set()
            for i, branch in enumerate(branches):
                if not isinstance(branch, dict):
                    raise self.fail("schema in anyOf must be an object", at(path, "anyOf"))
                mine = set(seen)
                if self.terminates(branch, mine, at(path, "anyOf", str(i))):
                    seen |= mine
                    return True
                gathered |= mine
            seen |= gathered
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return False
            seen.add(ref)
            try:
                target = self.resolve(ref, path)
            except SchemaProblem:
                raise self.fail(f"invalid $ref path: {ref}", path) from None
            return self.terminates(target, seen, at(path, "$ref"))
        return not node

    def _expand(self, node: dict[str, Any], path: Path) -> dict[str, Any]:
        ref = node.get("$ref")
        if ref is None:
            return node
        if not isinstance(ref, str):
            raise self.fail("$ref must be a string", at(path, "$ref"))
        seen = {ref}
        current = dict(self.resolve(ref))
        kept: dict[str, Any] = {}
        layer, previous = ref, ""
        while current.get("$ref") is not None:
            if any(k != "$ref" and k not in COMMON for k in current):
                break
            nxt = current["$ref"]
            if not isinstance(nxt, str):
                raise self.fail("$ref must be a string", at(path, "$ref"))
            if nxt in seen:
                break
            seen.add(nxt)
            resolved = self.resolve(nxt)
            for key in current:
                if key not in COMMON:
                    continue
                if key in kept:
                    if self.ultra:
                        outer = previous or layer
                        where = tuple(outer[2:].split("/")) if outer.startswith("#/") else path
                        raise self.fail(
                            f"conflicting keywords found after $ref expansion: keyword "
                            f'{json.dumps(key)} appears at multiple levels in a chained "$ref"; '
                            "keep it in only one place",
                            where,
                        )
                    continue
                kept[key] = current[key]
            previous, layer = layer, nxt
            current = resolved
        return {**current, **kept}

    def _ref_context(self, parent: dict[str, Any], target: dict[str, Any], path: Path) -> None:
        outer = {k for k in parent if k != "$ref"}
        clash = sorted(k for k in target if k in outer and (self.ultra or k not in COMMON))
        if clash:
            raise self.fail(
                f"conflicting keywords found after $ref expansion: keywords ({', '.join(clash)}) "
                'are defined both alongside "$ref" and in the referenced schema; remove the '
                "duplicates",
                path,
            )
        if ("type" in parent and "anyOf" in target) or ("type" in target and "anyOf" in parent):
            raise self.fail(
                "invalid schema after $ref expansion: (when using anyOf, type should be defined "
                "in anyOf items instead of the parent schema)",
                path,
            )
        branches = target.get("anyOf")
        for branch in branches if isinstance(branches, list) else []:
            if not isinstance(branch, dict):
                continue
            both = sorted(
                k for k in outer if k in branch and k != "anyOf" and (self.ultra or k not in COMMON)
            )
            if both:
                raise self.fail(
                    f"conflicting keywords found in anyOf after ref expansion: keywords "
                    f'({", ".join(both)}) are defined alongside "$ref" and inside anyOf in the '
                    "referenced schema; define them in only one place",
                    path,
                )
        last = path[-1] if path else ""
        if last in _REF_CONTEXTS or last.startswith("anyOf"):
            return
        if (len(path) >= 2 and path[-2] == "properties") or len(path) == 1:
            return
        raise self.fail("$ref is not allowed in this schema.", path)
