"""The simulator's oracle of Moonshot's schema validator (MoonshotAI/walle).

Cases written from walle's documented rules (docs/walle.md, docs/mfjs-spec.md,
docs/mfjs-walle-vs-draft-2020-12.md) and from reading its validator and test data; none is
copied from walle. Each asserts walle's verdict at a level and, for refusals, walle's path
and reason.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_agent.testing._walle import Limits, validate


def verdict(schema: Any, level: Any = "strict", limits: Limits | None = None) -> str | None:
    problem = validate(schema, level, limits)
    return None if problem is None else str(problem)


def obj(*required: str, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


S = {"type": "string"}

ACCEPTED_EVERYWHERE = [
    {},
    {"type": "object"},
    {"type": "string", "description": "一段文字", "minLength": 1, "maxLength": 20},
    {"type": ["string", "null"], "enum": ["北京", "上海", None]},
    {"type": ["string", "null"], "description": "可为空"},
    {"type": "number", "enum": [1, 2.5, -3]},
    {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
    obj("城市", 城市=S, 天数={"type": "integer", "minimum": 1, "maximum": 7}),
    {
        "type": "object",
        "title": "GetWeatherArgs",
        "properties": {"unit": {"$ref": "#/$defs/Unit", "description": "温度单位"}},
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "title": "Unit"}},
    },
    {  # a linked list that ends in null: recursion with a way out
        "type": "object",
        "properties": {"head": {"$ref": "#/$defs/Node"}},
        "required": ["head"],
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["value", "next"],
            }
        },
    },
    {"type": "object", "properties": {"child": {"$ref": "#"}, "name": S}, "required": ["name"]},
    {"anyOf": [S, {"type": "array", "items": S}], "description": "one or many"},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "object", "properties": {"type": S, "enum": S, "items": S, "a/b": S}},
    {"type": "array", "items": {}},
]


@pytest.mark.parametrize("level", ["lite", "strict", "ultra"])
@pytest.mark.parametrize("schema", ACCEPTED_EVERYWHERE)
def test_schemas_walle_accepts_at_every_level(schema: Any, level: Any) -> None:
    assert verdict(schema, level) is None


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "float"}, "At path 'root': invalid type"),
        ({"type": []}, "At path 'root': type array cannot be empty"),
        ({"type": ["string", 1]}, "At path 'root': invalid type in type array"),
        ({"type": 3}, "At path 'root': type must be string or array of strings"),
        (obj(x={"type": "str"}), "At path 'properties.x': invalid type"),
        (obj("b", a=S), "At path 'required': required property 'b' is not defined in properties"),
        (obj(a=[S]), "At path 'properties': property schema for 'a' must be an object"),
        ({"type": "object", "properties": []}, "At path 'properties': properties must be an"),
        ({"type": "object", "required": "a"}, "At path 'required': required must be an array"),
        ({"type": "object", "required": [1]}, "items in required array must be strings"),
        (obj(x={"enum": ["a"]}), "At path 'properties.x': type is not defined"),
        (obj(x={"type": "string", "enum": []}), "At path 'properties.x.enum': enum array cannot"),
        (obj(x={"type": "string", "enum": "a"}), "enum must be an array"),
        ({"type": "boolean", "enum": ["yes"]}, "enum value (yes) does not match any type in [bo"),
        ({"type": "string", "enum": [1]}, "At path 'enum': enum value (1) does not match any"),
        ({"type": "integer", "enum": [1.5]}, "At path 'enum': not a valid integer"),
        ({"type": "integer", "enum": ["1"]}, "At path 'enum': not a valid integer"),
        ({"type": "number", "enum": [1, True]}, "At path 'enum': not a valid number"),
        ({"type": "array", "enum": ["a"]}, "enum value (a) does not match any type in [array]"),
        ({"type": ["string", "integer"], "enum": ["a", 1]}, "only 2 types are supported"),
        ({"type": ["object", "null"], "enum": [None]}, "type object is not allowed in combin"),
        ({"type": "string", "anyOf": [S]}, "when using anyOf, type should be defined in anyOf"),
        (obj(x={"$ref": "#/$defs/A", "type": "string"}), "when using $ref, type should be"),
        ({"anyOf": []}, "At path 'anyOf': anyOf must have 1-500 items"),
        ({"anyOf": {"type": "string"}}, "At path 'anyOf': anyOf must be an array"),
        ({"anyOf": [S, "x"]}, "At path 'anyOf': schema in anyOf must be an object"),
        (
            {"anyOf": [{"type": "string", "minLength": 1}], "minLength": 2},
            "At path 'root': conflicting keywords found in anyOf with parent: keywords "
            "(minLength) are defined on the parent schema and inside anyOf",
        ),
        ({"type": "array", "items": [S]}, "At path 'items': items must be an object"),
        ({"type": "object", "additionalProperties": None}, "must be a boolean or an object"),
        ({"type": "string", "description": 1}, "At path 'description': description must be"),
        ({"type": "object", "$id": 1}, "At path '$id': $id must be a string"),
        ({"type": "string", "pattern": 1}, "At path 'pattern': pattern must be a string"),
        (obj(x={"$ref": 3}), "At path 'properties.x.$ref': $ref must be a string"),
        (obj(x={"$ref": "#/definitions/A"}), "references must start with #/$defs/"),
        (obj(x={"$ref": "#/$defs/"}), "definition name cannot be empty"),
        (obj(x={"$ref": "#/$defs/A"}), "$defs not found for reference: #/$defs/A"),
        (
            {**obj(x={"$ref": "#/$defs/B"}), "$defs": {"A": S}},
            "At path 'root': invalid $ref path: #/$defs/B",
        ),
        ({"type": "object", "$defs": {"A": []}}, "At path '$defs': $defs schema must be object"),
        ({"type": "object", "$defs": {"a/b": S}}, "$defs property name 'a/b' cannot contain"),
        (
            {"type": "object", "$defs": {"A": obj(**{"x/y": S})}},
            "$defs property name 'x/y' cannot contain '/' character",
        ),
        (
            obj("node", node={"$ref": "#"}),
            "At path 'properties.node': detected infinite recursion without termination",
        ),
        (
            {
                **obj("a", a={"$ref": "#/$defs/A"}),
                "$defs": {
                    "A": obj("b", b={"$ref": "#/$defs/B"}),
                    "B": obj("a", a={"$ref": "#/$defs/A"}),
                },
            },
            "detected infinite recursion without termination condition",
        ),
        (
            obj(x={"$ref": "#/$defs/A", "description": "d"}) | {"$defs": {"A": {"anyOf": [S]}}},
            None,
        ),
        (
            obj(x={"$ref": "#/$defs/A", "minLength": 1}) | {"$defs": {"A": {"type": "string"}}},
            None,  # strict lets a keyword stand beside $ref (ultra does not)
        ),
    ],
)
def test_walle_strict_verdicts(schema: Any, expected: str | None) -> None:
    got = verdict(schema, "strict")
    if expected is None:
        assert got is None
    else:
        assert got is not None and expected in got, got


@pytest.mark.parametrize(
    ("schema", "lite", "strict", "ultra"),
    [
        (
            obj(required=S),
            None,
            "At path 'properties': property name 'required' is reserved for JSON Schema keywords",
            "reserved",
        ),
        (  # walle's reference walk takes any "$ref" key for a reference, even a property's
            obj(**{"$ref": S}),
            "At path 'properties.$ref': $ref must be a string",
            "property name '$ref' is reserved",
            "reserved",
        ),
        (obj(anyOf=S), None, "property name 'anyOf' is reserved", "reserved"),
        (
            obj(r={"type": ["array", "null"], "items": {"type": "integer"}}),
            None,
            "At path 'properties.r': keyword items is not allowed in combination with multiple "
            "types",
            "multiple types",
        ),
        (obj(d={"type": "string", "format": "date"}), None, None, "unsupported keywords: format"),
        (obj(k={"const": "a"}), None, None, "unsupported keywords: const"),
        (obj(o={"oneOf": [S]}), None, None, "unsupported keywords: oneOf"),
        (obj(t={"type": "array", "prefixItems": [S]}), None, None, "prefixItems"),
        (obj(n={"type": "number", "exclusiveMinimum": 0}), None, None, "exclusiveMinimum"),
        (obj(u={"type": "array", "uniqueItems": True}), None, None, "uniqueItems"),
        ({"type": "object", "$schema": "x"}, None, None, "unsupported keywords: $schema"),
        ({"type": "string", "required": []}, None, None, "invalid keywords: required"),
        ({"type": "object", "minLength": 1}, None, None, "At path 'root': invalid keywords"),
        ({"type": "string", "minLength": 5, "maxLength": 1}, None, None, "cannot be greater"),
        ({"type": "integer", "minimum": 0.5}, None, None, "not a valid integer"),
        ({"type": "number", "minimum": 10, "maximum": 1}, None, None, "minimum (10) cannot be"),
        ({"type": "array", "minItems": -1}, None, None, "minItems must be non-negative"),
        ({"type": "object", "required": ["a", "a"], "properties": {"a": S}}, None, None, "dupl"),
        ({"type": ["string", "string"]}, None, None, "duplicate types in type array"),
        (obj(**{"": S}), None, None, "property name cannot be empty"),
        (obj(x={"type": "string", "$id": "x"}), None, None, "keyword $id must be at root level"),
        ({"anyOf": [S], "minLength": 1}, None, None, "not allowed at the same level as anyOf"),
        (
            obj(x={"$ref": "#/$defs/A", "minLength": 1}) | {"$defs": {"A": S}},
            None,
            None,
            "keyword 'minLength' is not allowed at the same level as $ref",
        ),
        (
            {"anyOf": [{"type": "string", "description": "b"}], "description": "a"},
            None,
            None,
            "conflicting keywords found in anyOf with parent: keywords (description)",
        ),
    ],
)
def test_what_each_level_adds(schema: Any, lite: Any, strict: Any, ultra: str) -> None:
    for level, expected in (("lite", lite), ("strict", strict), ("ultra", ultra)):
        got = verdict(schema, level)
        if expected is None:
            assert got is None, (level, got)
        else:
            assert got is not None and expected in got, (level, got)


def test_the_message_is_walle_style_with_anyof_indexes_dropped() -> None:
    schema = obj(x={"anyOf": [S, {"type": "object", "properties": {"a": S}, "required": ["b"]}]})
    assert verdict(schema) == (
        "At path 'properties.x.anyOf.required': required property 'b' is not defined in properties"
    )


def test_limits_are_walle_defaults_and_configurable() -> None:
    many = {"type": "integer", "enum": list(range(1001))}
    assert "enum array cannot have more than 1000 items" in (verdict(many) or "")
    assert verdict({"type": "integer", "enum": list(range(1000))}) is None
    wide = obj(**{f"p{i}": S for i in range(6)})
    assert verdict(wide) is None
    got = verdict(wide, limits=Limits(max_total_properties=5))
    assert got == (
        "At path 'root': total number of properties keys(6) across all objects exceeds "
        "maximum limit of 5"
    )
    deep: dict[str, Any] = S
    for _ in range(6):
        deep = obj(x=deep)
    assert verdict(deep) is None
    assert "schema depth exceeds maximum limit of 5" in (
        verdict(deep, limits=Limits(max_depth=5)) or ""
    )
    huge = {"type": "string", "description": "长" * 50_000}
    assert verdict(huge) == "At path 'root': schema exceeds maximum allowed size"


def test_not_a_dict_is_refused() -> None:
    assert verdict(None) == "At path 'root': schema must be a dict"
    assert "JSON schema parsing error" in (verdict(["type", "string"]) or "")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["type", "string", "a"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["type", "properties", "required", "items", "anyOf", "enum", "$ref", "$defs", "a"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["lite", "strict", "ultra"]))
def test_any_json_gets_a_verdict_never_an_exception(schema: Any, level: Any) -> None:
    problem = validate(schema, level)
    assert problem is None or str(problem).startswith("At path '")


LEAF = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": 0},
        {"type": "number"},
        {"type": "boolean"},
        {"type": ["string", "null"]},
        {"type": "string", "enum": ["甲", "乙"]},
    ]
)
NAMES = st.text(alphabet="abc订单号_", min_size=1, max_size=6).filter(
    lambda name: name not in {"required", "anyOf"}
)
MFJS = st.recursive(
    LEAF,
    lambda inner: (
        st.builds(lambda items: {"type": "array", "items": items}, inner)
        | st.builds(lambda branches: {"anyOf": branches}, st.lists(inner, min_size=1, max_size=3))
        | st.dictionaries(NAMES, inner, min_size=1, max_size=3).flatmap(
            lambda props: st.lists(st.sampled_from(sorted(props)), unique=True).map(
                lambda req: {"type": "object", "properties": props, "required": req}
            )
        )
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(MFJS)
def test_schemas_built_from_the_documented_subset_pass_ultra(schema: dict[str, Any]) -> None:
    root = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    assert validate(root, "ultra") is None, json.dumps(root, ensure_ascii=False)
