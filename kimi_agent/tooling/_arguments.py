"""The model's `arguments` string → keyword arguments, or an error the model can act on.

Two validators share one front end: Python-typed tools validate and convert with the
pydantic model built from their signature; tools declared with a raw JSON schema validate
with a jsonschema validator compiled from it. Both are built once, when the tool is created.

Every failure is a `ToolArgumentError` whose message names the tool, each wrong field (as a
path such as `items[0].sku`), what was expected and what was given, and asks the model to call
again with corrected arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from kimi_agent.errors import ToolArgumentError

__all__ = ["ArgumentParser", "ModelArguments", "SchemaArguments", "clean_text", "describe_schema"]

_DECODER = json.JSONDecoder(strict=False)
"""`json.loads(s, strict=False)` builds a decoder per call; one is enough."""
_SHOW_LIMIT = 80
_RAW_LIMIT = 200

_ARTICLES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "a boolean (true or false)", "null": "null", "array": "an array",
    "object": "an object",
}
_FORMATS = {
    "date-time": 'a date-time string such as "2024-05-01T09:30:00+08:00"',
    "date": 'a date string such as "2024-05-01"',
    "time": 'a time string such as "09:30:00"',
    "uuid": "a UUID string",
}
_PYDANTIC_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "a boolean (true or false)", "bool_parsing": "a boolean (true or false)",
    "list_type": "an array", "tuple_type": "an array", "set_type": "an array",
    "frozen_set_type": "an array", "iterable_type": "an array",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "dataclass_type": "an object", "dataclass_exact_type": "an object",
    "datetime_type": _FORMATS["date-time"], "datetime_parsing": _FORMATS["date-time"],
    "datetime_from_date_parsing": _FORMATS["date-time"],
    "date_type": _FORMATS["date"], "date_parsing": _FORMATS["date"],
    "date_from_datetime_parsing": _FORMATS["date"],
    "date_from_datetime_inexact": _FORMATS["date"],
    "time_type": _FORMATS["time"], "time_parsing": _FORMATS["time"],
    "uuid_type": _FORMATS["uuid"], "uuid_parsing": _FORMATS["uuid"],
    "decimal_type": "a decimal number", "decimal_parsing": "a decimal number",
    "none_required": "null",
}
_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def describe_schema(schema: Any) -> str:
    """What a schema expects, in words for the model: "a string", "one of ["a", "b"]"."""
    if not isinstance(schema, Mapping):
        return "any value"
    if "enum" in schema:
        return "one of " + _json(schema["enum"])
    if "const" in schema:
        return _json(schema["const"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " or ".join(dict.fromkeys(describe_schema(b) for b in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_ARTICLES.get(str(k), str(k)) for k in kind)
    if kind == "string" and schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"an array (items: {describe_schema(schema['items'])})"
    return _ARTICLES.get(str(kind), "any value")


class ArgumentParser:
    """Parses and validates the arguments of one tool (subclasses supply `validate`)."""

    def __init__(self, tool_name: str, parameters: Mapping[str, Any]) -> None:
        self.tool_name = tool_name
        properties = parameters.get("properties") or {}
        required = set(parameters.get("required") or ())
        self._expected = {name: describe_schema(p) for name, p in properties.items()}
        listed = ", ".join(
            f"{name} ({self._expected[name]}, {'required' if name in required else 'optional'})"
            for name in properties
        )
        self._signature = (
            f"'{tool_name}' takes a JSON object with: {listed}." if listed
            else f"'{tool_name}' takes no arguments: send {{}}."
        )

    def parse(self, raw: str | None) -> dict[str, Any]:
        """`raw` (the model's `arguments` string) → keyword arguments for the function.

        Raises:
            ToolArgumentError: the arguments are not a JSON object or do not validate.
        """
        data = self.load(raw)
        try:
            return self.validate(data)
        except RecursionError:
            raise self._error(["the arguments are nested too deeply to be checked"],
                              hint=True) from None

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def load(self, raw: str | None) -> dict[str, Any]:
        """Parse the JSON leniently: control characters pass, `None`/""/null mean {}, and an
        object encoded twice (a JSON string holding the object) is unwrapped."""
        if raw is None or not raw.strip():
            return {}
        raw = clean_text(raw)
        try:
            data = _DECODER.decode(raw)
        except json.JSONDecodeError as exc:
            problem = (
                f"the arguments are not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno} (character {exc.pos}); received: {_excerpt(raw, exc.pos)}"
            )
            raise self._error([problem], hint=True) from None
        except RecursionError:
            raise self._error(["the arguments are nested too deeply; send a flatter JSON "
                               "object"], hint=True) from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise self._error([f"the arguments cannot be read: {exc}"], hint=True) from None
        if isinstance(data, str):
            try:
                inner = _DECODER.decode(data)
            except (ValueError, RecursionError):
                inner = None
            data = inner if isinstance(inner, dict) else data
        if _ESCAPED_SURROGATE.search(raw):
            data = _clean(data)
        if data is None:
            return {}
        if not isinstance(data, dict):
            problem = f"the arguments must be a JSON object, got {_kind(data)}: {_show(data)}"
            raise self._error([problem], hint=True)
        return data

    def _error(self, problems: list[str], *, hint: bool = False) -> ToolArgumentError:
        lines = [f"Invalid arguments for tool '{self.tool_name}':"]
        lines += [f"- {problem}" for problem in problems]
        if hint:
            lines.append(self._signature)
        lines.append(f"Call '{self.tool_name}' again with corrected arguments.")
        return ToolArgumentError(self.tool_name, "\n".join(lines), problems)

    def _missing(self, path: str) -> str:
        if path in self._expected:
            return f"{path}: missing required argument (expected {self._expected[path]})"
        return f"{path}: missing required field"

    def _unexpected(self, path: str) -> str:
        if "." in path or "[" in path:
            return f"{path}: unexpected field"
        return f"{path}: unexpected argument"


class ModelArguments(ArgumentParser):
    """Validate and convert with the pydantic model of a Python-typed tool."""

    def __init__(
        self,
        tool_name: str,
        parameters: Mapping[str, Any],
        model: type[BaseModel],
        fields: Iterable[tuple[str, str]],
    ) -> None:
        super().__init__(tool_name, parameters)
        self._validate = model.model_validate
        self._fields = tuple(fields)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            values = self._validate(data).__dict__
        except ValidationError as exc:
            raise self._error(self._problems(exc, data), hint=self._hint(exc)) from None
        return {param: values[field] for field, param in self._fields}

    @staticmethod
    def _hint(exc: ValidationError) -> bool:
        return any(e["type"] in ("missing", "extra_forbidden") and len(e["loc"]) == 1
                   for e in exc.errors())

    def _problems(self, exc: ValidationError, data: dict[str, Any]) -> list[str]:
        grouped: dict[str, list[Any]] = {}
        for error in exc.errors():
            grouped.setdefault(_pydantic_path(error["loc"], data, error["type"]), []).append(error)
        problems = []
        for path, errors in grouped.items():
            kinds = {e["type"] for e in errors}
            if kinds == {"missing"}:
                problems.append(self._missing(path))
            elif kinds == {"extra_forbidden"}:
                problems.append(self._unexpected(path))
            else:
                errors = [e for e in errors if e["type"] not in ("missing", "extra_forbidden")]
                problems.append(_pydantic_problem(path, errors))
        return problems


class SchemaArguments(ArgumentParser):
    """Validate with a jsonschema validator (tools declared with a raw JSON schema).

    `parameters` is what the model sees (it words the hints); `validation` is the schema the
    arguments must satisfy, by default the same.
    """

    def __init__(self, tool_name: str, parameters: Mapping[str, Any],
                 validation: Mapping[str, Any] | None = None) -> None:
        import jsonschema  # type: ignore[import-untyped, unused-ignore]  # deferred: only raw schemas need it

        super().__init__(tool_name, parameters)
        schema = parameters if validation is None else validation
        self._validator = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator)(schema)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        errors = list(self._validator.iter_errors(data))
        if errors:
            problems: list[str] = []
            hint = False
            for error in errors:
                found = self._schema_problems(error)
                hint = hint or (error.validator in ("required", "additionalProperties")
                                and not error.absolute_path)
                problems.extend(p for p in found if p not in problems)
            raise self._error(problems, hint=hint)
        return data

    def _schema_problems(self, error: Any) -> list[str]:
        parts = list(error.absolute_path)
        path = _format_path(parts)
        kind, value, instance = error.validator, error.validator_value, error.instance
        if kind == "required" and isinstance(instance, dict):
            return [self._missing(_format_path([*parts, n])) for n in value if n not in instance]
        if kind == "additionalProperties" and isinstance(instance, dict):
            known = error.schema.get("properties") or {}
            patterns = error.schema.get("patternProperties") or {}
            return [
                self._unexpected(_format_path([*parts, key])) for key in instance
                if key not in known and not any(re.search(p, key) for p in patterns)
            ]
        got = _show(instance)
        if kind == "type":
            kinds = value if isinstance(value, list) else [value]
            expected = " or ".join(_ARTICLES.get(str(k), str(k)) for k in kinds)
        elif kind in ("enum", "const", "anyOf", "oneOf"):
            expected = describe_schema(error.schema)
        elif kind in _BOUNDS:
            expected = f"a value {_BOUNDS[kind]} {_json(value)}"
        else:
            return [f"{path}: {error.message}"]
        return [f"{path}: expected {expected}, got {got}"]


# --------------------------------------------------------------------------- helpers

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def clean_text(text: str) -> str:
    """`text` with each lone surrogate (which UTF-8 cannot carry) replaced by U+FFFD;
    well-formed surrogate pairs become the character they encode."""
    if not _LONE_SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    return value



def _pydantic_path(loc: tuple[int | str, ...], data: Any, kind: str) -> str:
    """The JSON path of an error, without pydantic's union-member and key tags."""
    parts: list[int | str] = []
    value = data
    for i, item in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(value, dict) and isinstance(item, str) and (
            item in value or (last and kind == "missing")
        ):
            parts.append(item)
            value = value.get(item)
        elif isinstance(value, list) and isinstance(item, int) and 0 <= item < len(value):
            parts.append(item)
            value = value[item]
    return _format_path(parts)


def _pydantic_problem(path: str, errors: list[Any]) -> str:
    got = _show(errors[0].get("input"))
    expected: list[str] = []
    for error in errors:
        kind, ctx, msg = error["type"], error.get("ctx") or {}, str(error["msg"])
        if kind in ("literal_error", "enum") and "expected" in ctx:
            expected.append(f"one of {ctx['expected']}")
        elif kind in _PYDANTIC_EXPECTED:
            expected.append(_PYDANTIC_EXPECTED[kind])
        elif msg.startswith("Input should be "):
            expected.append(msg.removeprefix("Input should be "))
        else:
            return f"{path}: {msg} (got {got})"
    return f"{path}: expected {' or '.join(dict.fromkeys(expected))}, got {got}"


def _format_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(arguments)"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _show(value: Any) -> str:
    text = _json(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "a value")


def _excerpt(raw: str, pos: int) -> str:
    """`raw` as received, shortened to a window around `pos` when long."""
    if len(raw) <= _RAW_LIMIT:
        return raw
    start = max(0, min(pos - _RAW_LIMIT // 2, len(raw) - _RAW_LIMIT))
    head = "…" if start > 0 else ""
    tail = "…" if start + _RAW_LIMIT < len(raw) else ""
    return f"{head}{raw[start:start + _RAW_LIMIT]}{tail} ({len(raw)} characters in all)"
