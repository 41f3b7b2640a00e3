"""A standard JSON schema rewritten into Moonshot's dialect (MFJS), meaning kept.

`to_moonshot` takes what pydantic or another service produces and returns a schema that
passes walle's default (`ultra`) level whenever the input can be expressed there, without
changing what the model is asked for: constraints the dialect has no keyword for are written
into the `description` (the validator of the arguments still enforces them), `const` becomes
a one-value `enum`, `oneOf` becomes `anyOf`, tuples become arrays whose items may be any of
the tuple's types, and keywords that must not stand beside `anyOf` move into its branches.
Definitions are inlined, except recursive ones, which stay under the root's `$defs`.

What cannot be expressed is left for the checker (`_dialect.check_moonshot`) to report.
The input is never modified, and equal input gives byte-identical output.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from kimi_agent.tooling._mfjs import (
    COMMON,
    JSON_TYPES,
    matches,
    type_list,
)
from kimi_agent.tooling._normalise_rules import (
    _bounds,
    _default,
    _describe,
    _enum_into_items,
    _fit,
    _kind_of,
    _merge,
    _mergeable,
    _note,
    _ordered,
    _recursive,
    _root_object,
    _show,
    _split_types,
    _type_enum,
)

__all__ = ["to_moonshot"]

_DROPPED = frozenset({
    "$schema", "$comment", "$anchor", "$dynamicAnchor", "$vocabulary", "discriminator",
    "readOnly", "writeOnly", "unevaluatedItems", "unevaluatedProperties", "additionalItems",
    "definitions", "contentSchema",
})
_NOTES = ("format", "pattern", "multipleOf", "uniqueItems", "minProperties", "maxProperties",
          "exclusiveMinimum", "exclusiveMaximum", "dependentRequired", "propertyNames",
          "patternProperties", "contentEncoding", "contentMediaType", "minContains",
          "maxContains", "contains", "deprecated", "examples")


def to_moonshot(schema: Mapping[str, Any], *, keep_titles: bool = False) -> dict[str, Any]:
    """`schema` rewritten into Moonshot's dialect (a new object; the input is untouched).

    `keep_titles=False` drops every `title` (pydantic's are derived from the field names and
    only cost tokens); raw schemas keep theirs.

    Raises:
        ValueError: a `$ref` points outside the document or to nothing, or a local
            reference other than `#/$defs/...` is recursive (it cannot be inlined).
    """
    return _Normaliser(schema, keep_titles).run()


class _Normaliser:
    def __init__(self, root: Mapping[str, Any], keep_titles: bool) -> None:
        self.root = root
        self.keep_titles = keep_titles
        defs: dict[str, Any] = {}
        for key in ("definitions", "$defs"):
            found = root.get(key)
            if isinstance(found, Mapping):
                defs.update(found)
        self.defs = defs
        self.recursive = _recursive(defs)
        self.kept: dict[str, Any] = {}
        self.notes: dict[str, list[str]] = {}
        """description text → the constraint notes written into it"""

    def run(self) -> dict[str, Any]:
        root = dict(self.root)
        ref = root.pop("$ref", None)
        if isinstance(ref, str) and ref != "#":
            root = {**dict(self._target(ref, "root", ())), **root}
        elif ref is not None:
            root["$ref"] = ref
        defs_at_root = {k: root.pop(k) for k in ("$defs", "$id") if k in root}
        out = self.node(root, "root", ())
        assert isinstance(out, dict)
        if isinstance(out.get("anyOf"), list) and "$ref" not in out:
            out = _root_object(out)
        if "type" not in out and not {"anyOf", "$ref", "enum"} & out.keys():
            out["type"] = "object"
        if out.get("type") == "object":
            out.setdefault("properties", {})
        if isinstance(defs_at_root.get("$id"), str):
            out["$id"] = defs_at_root["$id"]
        if self.kept:
            out["$defs"] = {name: self.kept[name] for name in sorted(self.kept)}
        return _ordered(out)

    # ------------------------------------------------------------------ references

    def _def_name(self, ref: str) -> str | None:
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix) and "/" not in ref[len(prefix):]:
                name = unquote(ref[len(prefix):]).replace("~1", "/").replace("~0", "~")
                return name if name in self.defs else None
        return None

    def _target(self, ref: str, path: str, stack: tuple[str, ...]) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ValueError(f"At path '{path}': cannot use {ref!r}: only references inside "
                             "the schema ('#/$defs/...') are supported")
        if ref in stack:
            raise ValueError(f"At path '{path}': {ref!r} refers to itself and is not under "
                             "'#/$defs/', so the recursion cannot be kept")
        target: Any = self.root
        pointer = unquote(ref[1:])
        for raw in pointer.split("/")[1:] if pointer else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise ValueError(f"At path '{path}': {ref!r} points to nothing")
        if isinstance(target, bool):
            return {} if target else {"not": {}}
        if not isinstance(target, Mapping):
            raise ValueError(f"At path '{path}': {ref!r} does not point to a schema")
        return target

    def _ref(self, node: dict[str, Any], path: str, stack: tuple[str, ...]) -> dict[str, Any]:
        """Inline the target of `node["$ref"]`, or keep a reference to a recursive one."""
        ref = node.pop("$ref")
        if not isinstance(ref, str):
            raise ValueError(f"At path '{path}': '$ref' must be a string")
        if ref == "#":
            return self._kept_ref("#", node, path, stack)
        name = self._def_name(ref)
        if name is not None and name in self.recursive:
            if name not in self.kept:
                self.kept[name] = {}  # placeholder: the definition may refer to itself
                self.kept[name] = self.node(dict(self.defs[name]), f"$defs.{name}", stack)
            return self._kept_ref(f"#/$defs/{name}", node, path, stack)
        target = self._target(ref, path, stack)
        merged = {**dict(target), **node}
        out: dict[str, Any] = self.node(merged, path, (*stack, ref))
        return out

    def _kept_ref(self, ref: str, siblings: dict[str, Any], path: str,
                  stack: tuple[str, ...]) -> dict[str, Any]:
        """A `$ref` that stays. Only annotations may stand beside it (and walle refuses them
        when the target has its own), so they go around a one-branch `anyOf`."""
        keep: dict[str, Any] = {}
        if isinstance(siblings.get("description"), str):
            keep["description"] = siblings["description"]
        if self.keep_titles and isinstance(siblings.get("title"), str):
            keep["title"] = siblings["title"]
        if siblings.get("default") is not None:
            keep["description"] = _describe(keep.get("description"),
                                            [f"Default: {_show(siblings['default'])}"])
        if not keep:
            return {"$ref": ref}
        return _ordered({**keep, "anyOf": [{"$ref": ref}]})

    # ------------------------------------------------------------------ one node

    def node(self, value: Any, path: str, stack: tuple[str, ...]) -> Any:
        if not isinstance(value, Mapping):
            return copy.deepcopy(value)
        node = dict(value)
        while True:
            if "$ref" in node:
                return self._ref(node, path, stack)
            branches = node.get("allOf")
            if isinstance(branches, list) and branches and all(
                    isinstance(b, Mapping) for b in branches) and _mergeable(node, branches):
                node.pop("allOf")
                for branch in branches:
                    node = _merge(node, dict(branch))
                continue
            break
        for key in _DROPPED:
            node.pop(key, None)
        if not self.keep_titles or not isinstance(node.get("title"), str):
            node.pop("title", None)
        required = node.get("required")
        if isinstance(required, list) and all(isinstance(n, str) for n in required):
            node["required"] = list(dict.fromkeys(required))  # walle's default level: unique
        if "oneOf" in node and "anyOf" not in node:
            node["anyOf"] = node.pop("oneOf")
        kinds = type_list(node) if "type" in node else list(JSON_TYPES)
        if "const" in node and kinds is not None and "enum" not in node and \
                any(matches(node["const"], k) for k in kinds):
            node["enum"] = [node.pop("const")]
        array = kinds is not None and "array" in kinds
        if isinstance(node.get("items"), list) and array:  # draft-07 tuple
            node["prefixItems"] = node.pop("items")
        notes: list[str] = []
        if "prefixItems" in node and array:
            self._tuple(node, notes)
        node = self._children(node, path, stack)
        if node.get("items") == {}:
            del node["items"]
        if node.get("additionalProperties") == {}:
            node["additionalProperties"] = True
        _type_enum(node)
        _enum_into_items(node)
        _bounds(node, notes)
        for key in _NOTES:
            if key in node:
                notes.append(_note(key, node.pop(key)))
        node = self._distribute(node, path, stack) if "anyOf" in node else _split_types(node)
        _default(node, notes)
        if "anyOf" in node:
            self._annotations_outside(node, notes)
        if notes:
            node["description"] = _describe(node.get("description"), notes)
            self.notes[node["description"]] = notes
        return _ordered(node)

    def _annotations_outside(self, node: dict[str, Any], notes: list[str]) -> None:
        """A description or title on an `anyOf` covers its branches, and walle's default
        level refuses the same annotation on both: the branches' copies go. The parent's
        text is the one written for this place (a field's description over its model's
        docstring); the constraint notes a branch carried join the parent's."""
        outer = COMMON & node.keys()
        if notes:
            outer |= {"description"}
        if not outer:
            return
        branches = []
        for branch in node["anyOf"]:
            if isinstance(branch, dict):
                text = branch.get("description")
                if "description" in outer and isinstance(text, str):
                    notes.extend(self.notes.get(text, ()))
                branch = {k: v for k, v in branch.items() if k not in outer}
            branches.append(branch)
        node["anyOf"] = branches

    def _children(self, node: dict[str, Any], path: str,
                  stack: tuple[str, ...]) -> dict[str, Any]:
        props = node.get("properties")
        if isinstance(props, Mapping):
            node["properties"] = {name: self.node(child, f"{path}.properties.{name}", stack)
                                  for name, child in props.items()}
        for key in ("items", "additionalProperties", "not", "if", "then", "else"):
            if isinstance(node.get(key), Mapping):
                node[key] = self.node(node[key], f"{path}.{key}", stack)
        for key in ("anyOf", "allOf", "oneOf"):
            if isinstance(node.get(key), list):
                node[key] = [self.node(b, f"{path}.{key}", stack) for b in node[key]]
        return node

    def _tuple(self, node: dict[str, Any], notes: list[str]) -> None:
        """prefixItems → `items` that any of the positions' schemas satisfies."""
        prefix = node.pop("prefixItems")
        if not isinstance(prefix, list):
            return
        rest = node.pop("items", None)
        branches = [b for b in prefix if isinstance(b, Mapping)]
        if isinstance(rest, Mapping):
            branches.append(rest)
        distinct: dict[str, Any] = {}
        for branch in branches:
            distinct.setdefault(json.dumps(branch, sort_keys=True, default=str), branch)
        if len(distinct) == 1:
            node["items"] = next(iter(distinct.values()))
        elif distinct:
            node["items"] = {"anyOf": list(distinct.values())}
        if rest is False:  # nothing after the listed positions
            node.setdefault("maxItems", len(prefix))
        if len(distinct) > 1:
            kinds = [_kind_of(b) for b in prefix]
            notes.append(f"{len(prefix)} items in this order: {', '.join(kinds)}")

    def _distribute(self, node: dict[str, Any], path: str,
                    stack: tuple[str, ...]) -> dict[str, Any]:
        """Only annotations may stand beside `anyOf`: everything else goes into each branch."""
        branches = node["anyOf"]
        if not isinstance(branches, list):
            return node
        outer = {k: v for k, v in node.items() if k != "anyOf" and k not in COMMON
                 and k != "default"}
        if not outer:
            return node
        if not all(isinstance(b, dict) for b in branches):
            return node
        merged = []
        for branch in branches:
            combined = _merge(dict(outer), dict(branch))
            outer_kinds, branch_kinds = type_list(outer), type_list(branch)
            if outer_kinds is not None and branch_kinds is not None:
                both = [k for k in branch_kinds if k in outer_kinds] or branch_kinds
                combined["type"] = both[0] if len(both) == 1 else both
            merged.append(self.node(_fit(combined), path, stack))
        rest = {k: v for k, v in node.items() if k not in outer}
        rest["anyOf"] = merged
        return rest
