"""The pydantic side of a tool: the arguments model built from the signature, its JSON
schema (defaults held aside so pydantic's `$ref` rewriting never touches them), and the
search for the parameter pydantic cannot describe when it fails."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, PydanticJsonSchemaWarning

from kimi_agent.errors import ToolDefinitionError
from kimi_agent.tooling._annotations import _strip, _type_name

_ARGUMENTS_CONFIG = ConfigDict(extra="forbid")

def _field(hint: Any, param: inspect.Parameter, doc: str | None) -> tuple[Any, FieldInfo]:
    """The (annotation, FieldInfo) of one parameter for `create_model`.

    A description given with `Field(description=...)` (in `Annotated` or as the default)
    wins over the docstring's.
    """
    default = param.default
    annotation = hint
    if isinstance(default, FieldInfo):
        annotation = Annotated[hint, default]
        default = inspect.Parameter.empty
    described = any(
        isinstance(meta, FieldInfo) and meta.description
        for meta in getattr(annotation, "__metadata__", ())
    )
    kwargs: dict[str, Any] = {"alias": param.name}
    if doc and not described:
        kwargs["description"] = doc
    if default is not inspect.Parameter.empty:
        kwargs["default"] = default
    return annotation, Field(**kwargs)


def _arguments_model(
    owner: str, fields: dict[str, Any], names: list[tuple[str, str]]
) -> type[BaseModel]:
    try:
        model: type[BaseModel] = create_model(
            f"{owner}_arguments", __config__=_ARGUMENTS_CONFIG, **fields
        )
        return model
    except Exception as exc:
        raise _probe(owner, fields, names, exc) from exc


def _model_schema(
    model: type[BaseModel], owner: str, fields: dict[str, Any], names: list[tuple[str, str]]
) -> dict[str, Any]:
    try:
        return _json_schema(model.model_json_schema)
    except Exception as exc:
        raise _probe(owner, fields, names, exc) from exc


_DEFAULT_MARK = "\x00kimi-agent-default:"


class _HeldDefaults(GenerateJsonSchema):
    """Puts a marker where each default goes and keeps the encoded value aside.

    pydantic rewrites `$ref`s after generation by walking the whole schema, defaults
    included, and a default that looks like a schema (a dict with a `$defs` key, say) breaks
    that walk or gets rewritten. A marker string is left alone; `_json_schema` puts the real
    defaults back afterwards, as data.
    """

    held: dict[str, Any]

    def encode_default(self, dft: Any) -> Any:
        value = super().encode_default(dft)
        mark = f"{_DEFAULT_MARK}{len(self.held)}"
        self.held[mark] = value
        return mark


def _json_schema(generate: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    held: dict[str, Any] = {}
    generator = type("_Held", (_HeldDefaults,), {"held": held})
    with warnings.catch_warnings():
        # a default that is not JSON (a sentinel, say) is left out of the schema
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        schema = generate(schema_generator=generator)
    out = _restore(schema, held)
    assert isinstance(out, dict)
    return out


def _restore(node: Any, held: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: held.get(value, value) if key == "default" and isinstance(value, str)
                else _restore(value, held) for key, value in node.items()}
    if isinstance(node, list):
        return [_restore(item, held) for item in node]
    return node


def _probe(
    owner: str, fields: dict[str, Any], names: list[tuple[str, str]], exc: Exception
) -> ToolDefinitionError:
    """Find the parameter whose type pydantic cannot turn into a JSON schema."""
    for field_name, param in names:
        annotation = fields[field_name][0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
                _json_schema(TypeAdapter(annotation).json_schema)
        except Exception as inner:
            reason = str(inner).strip().splitlines()[0] if str(inner).strip() else repr(inner)
            return ToolDefinitionError(
                f"tool {owner!r}: parameter {param!r} has type {_type_name(_strip(annotation))}, "
                f"which cannot be described in JSON schema ({reason})"
            )
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return ToolDefinitionError(f"tool {owner!r}: cannot build the parameters schema ({reason})")
