"""walle's checks of `$ref`s, run once the rest of a schema is well formed: every reference
resolves, sits where walle allows one, does not clash with its target, and, when an instance
could otherwise never end, has a way out of its recursion (walle's CheckRefTermination)."""

from __future__ import annotations

from typing import Any

from kimi_agent.tooling._mfjs import COMMON

__all__ = ["RefChecks"]


class RefChecks:
    """The reference checks of `_dialect._Checker` (a mixin: it shares its state)."""

    root: dict[str, Any]
    ultra: bool
    problems: list[str]
    refs: set[str]

    def fail(self, parts: tuple[str, ...], reason: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def resolve(self, ref: str) -> dict[str, Any] | None:
        if ref == "#":
            return self.root
        target: Any = self.root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                return None
        return target if isinstance(target, dict) else None

    def refs_resolve(self) -> None:
        if self.problems:
            return  # the reference checks assume a well-formed schema
        for ref in sorted(self.refs):
            if self.resolve(ref) is None:
                self.fail((), f"invalid $ref path: {ref}")
        if self.problems or not self.refs:
            return
        check = not self.terminates(self.root, set())
        self._walk_refs(self.root, (), check)

    def _walk_refs(self, node: dict[str, Any], parts: tuple[str, ...], check: bool) -> None:
        if "$ref" in node:
            target = self.expand(node, parts)
            if target is None:
                return
            self._ref_context(node, target, parts)
            if check and not self.terminates(target, set()):
                self.fail(parts, "detected infinite recursion without termination condition")
        for key, value in node.items():
            if key == "$defs":
                continue
            if isinstance(value, dict):
                keep = check
                if key == "additionalProperties" or (key == "properties"
                                                     and node.get("required") == []):
                    keep = False
                self._walk_refs(value, (*parts, key), keep)
            elif key == "anyOf" and isinstance(value, list):
                for branch in value:
                    if isinstance(branch, dict):
                        self._walk_refs(branch, (*parts, "anyOf"), check)

    def expand(self, node: dict[str, Any], parts: tuple[str, ...]) -> dict[str, Any] | None:
        """The target of `node`'s `$ref`, following chains of bare references (walle's
        ExpandRef: annotations met along the chain are kept, once)."""
        seen = {node["$ref"]}
        target = self.resolve(node["$ref"])
        if target is None:
            return None
        kept: dict[str, Any] = {}
        while isinstance(target.get("$ref"), str) and set(target) <= COMMON | {"$ref"}:
            ref = target["$ref"]
            if ref in seen:
                break
            seen.add(ref)
            following = self.resolve(ref)
            if following is None:
                return None
            for key in COMMON & target.keys():
                if key in kept and self.ultra:
                    self.fail(parts, f'conflicting keywords found after $ref expansion: keyword '
                                     f'"{key}" appears at multiple levels in a chained "$ref"; '
                                     "keep it in only one place")
                    return None
                kept.setdefault(key, target[key])
            target = following
        return {**target, **kept}

    def _ref_context(self, node: dict[str, Any], target: dict[str, Any],
                     parts: tuple[str, ...]) -> None:
        outer = set(node) - {"$ref"}
        clash = sorted(k for k in outer & target.keys() if self.ultra or k not in COMMON)
        if clash:
            self.fail(parts, "conflicting keywords found after $ref expansion: keywords "
                             f"({', '.join(clash)}) are defined both alongside \"$ref\" and in "
                             "the referenced schema; remove the duplicates")
            return
        if ("type" in node and "anyOf" in target) or ("type" in target and "anyOf" in node):
            self.fail(parts, "invalid schema after $ref expansion: (when using anyOf, type "
                             "should be defined in anyOf items instead of the parent schema)")
            return
        if isinstance(target.get("anyOf"), list):
            for branch in target["anyOf"]:
                if isinstance(branch, dict):
                    both = sorted(k for k in outer & branch.keys()
                                  if k != "anyOf" and (self.ultra or k not in COMMON))
                    if both:
                        self.fail(parts, "conflicting keywords found in anyOf after ref "
                                         f"expansion: keywords ({', '.join(both)}) are defined "
                                         "alongside \"$ref\" and inside anyOf in the referenced "
                                         "schema; define them in only one place")
                        return
        last = parts[-1] if parts else ""
        if len(parts) <= 1 or last in ("additionalProperties", "items", "anyOf") or \
                parts[-2] == "properties":
            return
        self.fail(parts, "$ref is not allowed in this schema.")

    def terminates(self, node: dict[str, Any], seen: set[str]) -> bool:
        """Whether an instance of `node` can be finite (walle's CheckRefTermination)."""
        kind = node.get("type")
        check = ""
        if isinstance(kind, str):
            if kind not in ("object", "array"):
                return True
            check = kind
        elif isinstance(kind, list):
            for each in kind:
                if each not in ("object", "array"):
                    return True
                check = str(each)
        if check == "array":
            items = node.get("items")
            if not isinstance(items, dict) or not items or self.terminates(items, seen):
                return True
        if check == "object":
            required = node.get("required")
            props = node.get("properties")
            if not required or not isinstance(props, dict) or not props:
                return True
            wanted = set(required) if isinstance(required, list) else set()
            for name, child in props.items():
                if name in wanted and isinstance(child, dict) \
                        and self.terminates(child, seen):
                    return True
        branches = node.get("anyOf")
        if isinstance(branches, list):
            if not branches:
                return True
            found: set[str] = set()
            for branch in branches:
                local = set(seen)
                if isinstance(branch, dict) and self.terminates(branch, local):
                    seen |= local
                    return True
                found |= local
            seen |= found
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return False
            seen.add(ref)
            target = self.resolve(ref)
            return target is not None and self.terminates(target, seen)
        return not node
