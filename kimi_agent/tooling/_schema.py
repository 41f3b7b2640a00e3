"""Function signature + docstring → the JSON schema of a tool's parameters.

pydantic describes the types (and later validates and converts the model's arguments with
the very model built here, once, when the tool is created); `docstrings` supplies the
descriptions; `_normalise.to_moonshot` rewrites the result into Moonshot's dialect. A schema
made from a signature passes walle's default (`ultra`) level; a raw schema (`raw_schema`)
must pass its `strict` level, the one Moonshot's server applies. So a tool that exists is a
tool the gateway accepts (docs/wire/schema-dialect.md).
"""

from __future__ import annotations

import collections
import collections.abc
import inspect
import json
import re
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from kimi_agent.errors import ConfigurationError, ToolDefinitionError
from kimi_agent.tooling._annotations import (
    _check_type,
    _is_context,
    _type_hints,
)
from kimi_agent.tooling._dialect import RESERVED_NAMES, Level, check_moonshot
from kimi_agent.tooling._docstrings import parse_docstring
from kimi_agent.tooling._normalise import to_moonshot
from kimi_agent.tooling._pydantic import (
    _arguments_model,
    _field,
    _json_schema,
    _model_schema,
)

__all__ = [
    "FunctionSchema",
    "RawSchema",
    "find_context_param",
    "function_schema",
    "output_schema",
    "raw_schema",
]

_PROBLEM_PATH = re.compile(r"^At path 'properties\.([^.']+)([^']*)': ")


def _name_parameter(match: re.Match[str]) -> str:
    where = f" (at {match.group(2).lstrip('.')})" if match.group(2) else ""
    return f"parameter {match.group(1)!r}{where}: "


@dataclass(frozen=True, slots=True)
class FunctionSchema:
    """Everything the tool layer needs about a function, computed once.

    `model` validates and converts the arguments; its field `fields[i][0]` carries the value
    of the parameter `fields[i][1]` (fields have neutral names and the parameter names as
    aliases, so any parameter name works, even `json` or `model_config`).
    `positional_only` lists, in order, the parameters (the context included) that must be
    passed by position.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    context_param: str | None
    model: type[BaseModel]
    fields: tuple[tuple[str, str], ...]
    positional_only: tuple[str, ...]


def function_schema(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    localns: Mapping[str, Any] | None = None,
) -> FunctionSchema:
    """Describe `func` as a tool; `ToolDefinitionError` names the parameter at fault.

    `localns` resolves string annotations that name classes local to the caller.
    """
    owner = name or getattr(func, "__name__", None)
    if not isinstance(owner, str) or not owner:
        raise ToolDefinitionError(f"cannot name a tool for {func!r}: pass name=...")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise ToolDefinitionError(
            f"tool {owner!r}: generator functions are not supported, return the whole result"
        )
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"tool {owner!r}: cannot read the signature: {exc}") from exc
    hints = _type_hints(func, signature, owner, localns)
    doc = parse_docstring(inspect.getdoc(func))

    context_param: str | None = None
    positional_only: list[str] = []
    fields: dict[str, Any] = {}
    names: list[tuple[str, str]] = []
    for index, param in enumerate(signature.parameters.values()):
        if param.kind is param.VAR_POSITIONAL or param.kind is param.VAR_KEYWORD:
            stars = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"tool {owner!r}: parameter '{stars}{param.name}' is not supported; "
                "declare every argument the model may send as a parameter of its own"
            )
        if param.name not in hints:
            hint = (
                " (for a method, make the tool from the bound method: registry.register(obj.m))"
                if index == 0 and param.name in ("self", "cls") else ""
            )
            raise ToolDefinitionError(
                f"tool {owner!r}: parameter {param.name!r} has no type annotation{hint}"
            )
        hint = hints[param.name]
        if param.kind is param.POSITIONAL_ONLY:
            positional_only.append(param.name)
        if _is_context(hint):
            if context_param is not None:
                raise ToolDefinitionError(
                    f"tool {owner!r}: parameters {context_param!r} and {param.name!r} are both "
                    "RunContext; a tool takes at most one"
                )
            context_param = param.name
            continue
        if param.name in RESERVED_NAMES:
            raise ToolDefinitionError(
                f"tool {owner!r}: parameter {param.name!r} cannot have this name: Moonshot's "
                f"schema dialect reserves the property names {', '.join(sorted(RESERVED_NAMES))}"
                "; rename the parameter")
        _check_type(hint, owner, param.name, top=True, seen=set())
        field_name = f"p{index}"
        fields[field_name] = _field(hint, param, doc.params.get(param.name))
        names.append((field_name, param.name))

    key = _shape_key(fields, names)
    with _SHAPES_LOCK:
        cached = _SHAPES.get(key) if key is not None else None
        if cached is not None:
            _SHAPES.move_to_end(key)
    if cached is not None:
        model, parameters = cached
    else:
        model, parameters = _build(owner, fields, names)
        if key is not None:
            with _SHAPES_LOCK:
                _SHAPES[key] = (model, parameters)
                if len(_SHAPES) > _SHAPES_KEPT:
                    _SHAPES.popitem(last=False)
    return FunctionSchema(
        name=owner,
        description=description if description is not None else doc.description,
        parameters=_copy(parameters) if cached is not None else parameters,
        context_param=context_param,
        model=model,
        fields=tuple(names),
        positional_only=tuple(positional_only),
    )


_SHAPES: collections.OrderedDict[Hashable, tuple[type[BaseModel], dict[str, Any]]] = \
    collections.OrderedDict()
_SHAPES_KEPT = 512
_SHAPES_LOCK = threading.Lock()
"""Signatures already described, by shape: many tools share one (an MCP server's, a
family of look-ups), and pydantic's model and schema are most of a tool's creation cost."""


def _copy(node: Any) -> Any:
    """A copy of a JSON value (dicts and lists copied, scalars shared)."""
    if isinstance(node, dict):
        return {key: _copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_copy(item) for item in node]
    return node


def _shape_key(fields: dict[str, Any], names: list[tuple[str, str]]) -> Hashable | None:
    """What the model and schema of a signature depend on, or None when it is not hashable
    (a mutable default, say: such signatures are described each time)."""
    parts = []
    for field_name, param in names:
        annotation, info = fields[field_name]
        parts.append((field_name, param, annotation, info.default, info.description))
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _build(owner: str, fields: dict[str, Any],
           names: list[tuple[str, str]]) -> tuple[type[BaseModel], dict[str, Any]]:
    model = _arguments_model(owner, fields, names)
    out = to_moonshot(_model_schema(model, owner, fields, names))
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": out.get("properties", {}),
        "required": out.get("required", []),
        "additionalProperties": False,
    }
    if "$defs" in out:
        parameters["$defs"] = out["$defs"]
    _checked(parameters, owner, "ultra")
    for name, prop in parameters["properties"].items():
        where = _untyped(prop)
        if where is not None:
            at = f" (at {where})" if where else ""
            raise ToolDefinitionError(
                f"tool {owner!r}: parameter {name!r}{at} has a schema without a type, which "
                "tells the model nothing (walle: every subschema declares its type); "
                "use a type JSON can carry")
    return model, parameters


@dataclass(frozen=True, slots=True)
class RawSchema:
    """A raw parameters schema made ready: `parameters` goes to the gateway, `validation`
    checks the model's arguments (the schema as given when it is a valid JSON schema, so
    that constraints moved into descriptions are still enforced)."""

    parameters: dict[str, Any]
    validation: dict[str, Any]


def raw_schema(schema: Any, owner: str) -> RawSchema:
    """A schema another service wrote, normalised to the dialect and checked at walle's
    `strict` level (what Moonshot's server requires).

    Raises:
        ToolDefinitionError: the schema is not a JSON object schema, or cannot be made to
            pass the dialect (the message carries walle's `At path '...': ...` reasons).
    """
    if not isinstance(schema, Mapping):
        raise ToolDefinitionError(f"tool {owner!r}: the parameters schema must be a JSON object")
    try:
        original = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"tool {owner!r}: the parameters schema is not plain JSON ({exc})") from exc
    try:
        out = to_moonshot(original, keep_titles=True)
    except ValueError as exc:
        raise ToolDefinitionError(f"tool {owner!r}: {exc}") from exc
    if check_moonshot(out, "strict") or out.get("type") != "object":
        # the rewrite exposed something walle does not look at in the original (inside a
        # keyword it ignores, say): what the server accepts is the original, if it is sound
        if not check_moonshot(original, "strict") and original.get("type") == "object" \
                and _schema_problem(original) is None:
            out = original
        else:
            _checked(out, owner, "strict")
            _checked(original, owner, "strict")
            raise ToolDefinitionError(
                f"tool {owner!r}: At path 'root': the parameters of a tool must be an object "
                "schema (\"type\": \"object\"); the model's arguments are always a JSON "
                "object")
    problem = _schema_problem(out)
    if problem is not None:
        raise ToolDefinitionError(f"tool {owner!r}: the parameters schema is not a valid JSON "
                                  f"schema: {problem}")
    return RawSchema(out, original if _schema_problem(original) is None else out)


def _untyped(node: Any, where: str = "") -> str | None:
    """The path of the first subschema that declares no type (`{}` says "anything"), or
    None. Only `additionalProperties` may be anything."""
    if not isinstance(node, dict):
        return None
    if not {"type", "anyOf", "$ref", "enum"} & node.keys():
        return where
    for key in ("items",):
        if isinstance(node.get(key), dict):
            found = _untyped(node[key], f"{where}.{key}".lstrip("."))
            if found is not None:
                return found
    for name, child in (node.get("properties") or {}).items():
        found = _untyped(child, f"{where}.{name}".lstrip("."))
        if found is not None:
            return found
    for child in node.get("anyOf") or ():
        found = _untyped(child, where)
        if found is not None:
            return found
    return None


def _checked(schema: dict[str, Any], owner: str, level: Level) -> None:
    """Refuse `schema` when walle's `level` does. A raw schema's problems keep walle's own
    form (`At path 'properties.x': ...`, the schema's author thinks in JSON); a generated
    schema's name the parameter."""
    problems = check_moonshot(schema, level)
    if not problems:
        return
    if level == "ultra":
        problems = [_PROBLEM_PATH.sub(_name_parameter, p) for p in problems]
    raise ToolDefinitionError(
        f"tool {owner!r}: the parameters schema is outside Moonshot's dialect "
        f"(walle, {level} level): " + "; ".join(problems))


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON schema of the draft it declares (2020-12 if none)."""
    import jsonschema  # type: ignore[import-untyped, unused-ignore]  # raw schemas only

    validator = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator(validator.META_SCHEMA).iter_errors(schema))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def output_schema(tp: Any) -> dict[str, Any]:
    """The dialect-normalised JSON schema of a structured-output type (e.g. a pydantic model).

    Raises:
        ConfigurationError: the type has no JSON schema, or one outside the dialect.
    """
    try:
        out = to_moonshot(_json_schema(TypeAdapter(tp).json_schema))
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConfigurationError(f"output type {tp!r} has no usable JSON schema: {exc}") from exc
    problems = check_moonshot(out, "ultra")
    if problems:
        raise ConfigurationError(f"output type {tp!r} has a JSON schema outside Moonshot's "
                                 f"dialect: {'; '.join(problems)}")
    return out


def find_context_param(func: Callable[..., Any]) -> str | None:
    """The parameter of `func` annotated `RunContext`, if any (best effort, never raises)."""
    try:
        signature = inspect.signature(func)
        hints = _type_hints(func, signature, "", None)
    except (TypeError, ValueError, ToolDefinitionError):
        return None
    for name, hint in hints.items():
        if _is_context(hint):
            return name
    return None
