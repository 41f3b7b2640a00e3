"""Moonshot's schema dialect: the checker (walle's rules at `strict` and `ultra`) and the
normaliser that rewrites standard JSON schemas into it.

The cases are written from walle's documented rules (docs/wire/schema-dialect.md); each
says which level refuses it and with which walle reason.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_agent.errors import ToolDefinitionError
from kimi_agent.tooling._dialect import check_moonshot, check_tool_name
from kimi_agent.tooling._normalise import to_moonshot
from kimi_agent.tooling._schema import raw_schema


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _ok(schema: dict[str, Any], *, keep_titles: bool = False) -> dict[str, Any]:
    out = to_moonshot(schema, keep_titles=keep_titles)
    assert check_moonshot(out, "ultra") == [], check_moonshot(out, "ultra")
    jsonschema.Draft202012Validator.check_schema(out)
    return out


# --------------------------------------------------------------------------- the checker

ACCEPTED_BY_BOTH = [
    {},
    _obj(q={"type": "string", "description": "查询", "title": "Q"}),
    {**_obj(n={"$ref": "#/$defs/N"}), "$defs": {"N": {"type": "integer"}}},
    {**_obj(n={"$ref": "#/$defs/N", "description": "节点"}),
     "$defs": {"N": {"type": "object", "properties": {
         "next": {"anyOf": [{"$ref": "#/$defs/N"}, {"type": "null"}]}}}}},
    _obj(q={"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "one or many"}),
    _obj(lang={"type": ["string", "null"], "enum": ["中文", "English", None]}),
    _obj(kv={"type": "object", "additionalProperties": {}}),
    _obj(n={"type": "integer", "minimum": 1, "maximum": 7, "default": 3}),
    {**_obj(a={"type": "string"}), "required": ["a"], "additionalProperties": False},
]

# (schema, level that refuses it, walle's reason); "strict" means both levels refuse it
REFUSED = [
    (_obj(x={"type": "float"}), "strict", "At path 'properties.x': invalid type 'float'"),
    (_obj(required={"type": "string"}), "strict",
     "At path 'properties': property name 'required' is reserved for JSON Schema keywords"),
    (_obj(**{"$ref": {"type": "string"}}), "strict", "property name '$ref' is reserved"),
    ({**_obj(a={"type": "string"}), "required": ["b"]}, "strict",
     "At path 'required': required property 'b' is not defined in properties"),
    (_obj(b={"type": "boolean", "enum": ["yes"]}), "strict",
     "At path 'properties.b.enum': enum value (\"yes\") does not match any type in "
     "['boolean']"),
    (_obj(n={"type": "integer", "enum": ["1"]}), "strict", "does not match any type"),
    (_obj(tags={"type": "array", "items": {"type": "string"}, "enum": ["a", "b"]}), "strict",
     "does not match any type in ['array']"),
    (_obj(x={"type": "string", "anyOf": [{"type": "string"}]}), "strict",
     "At path 'properties.x': when using anyOf, type should be defined in anyOf items"),
    (_obj(x={"type": "array", "items": [{"type": "string"}]}), "strict",
     "At path 'properties.x.items': items must be an object"),
    (_obj(x={"$ref": "#/$defs/Missing"}), "strict", "$defs not found for reference"),
    (_obj(x={"$ref": "https://example.com/s.json"}), "strict",
     "references must start with #/$defs/"),
    (_obj(x={"anyOf": []}), "strict", "anyOf must have 1-500 items"),
    ({**_obj(n={"$ref": "#/$defs/N"}), "required": ["n"],
      "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}},
                      "required": ["n"]}}}, "strict",
     "detected infinite recursion without termination condition"),
    (_obj(x={"type": "string", "format": "date"}), "ultra",
     "At path 'properties.x': unsupported keywords: format"),
    (_obj(x={"enum": [1], "const": 1, "type": "integer"}), "ultra", "unsupported keywords: const"),
    (_obj(x={"oneOf": [{"type": "string"}]}), "ultra", "unsupported keywords: oneOf"),
    (_obj(x={"type": "array", "prefixItems": [{"type": "string"}]}), "ultra",
     "unsupported keywords: prefixItems"),
    (_obj(x={"type": "number", "exclusiveMinimum": 0}), "ultra", "exclusiveMinimum"),
    (_obj(x={"type": "array", "uniqueItems": True}), "ultra", "uniqueItems"),
    (_obj(x={"type": "array", "enum": [[1]]}), "ultra", "invalid keywords: enum"),
    (_obj(x={"type": "string", "minimum": 1}), "ultra", "invalid keywords: minimum"),
    (_obj(x={"type": "integer", "minimum": 5, "maximum": 1}), "ultra",
     "minimum (5) cannot be greater than maximum (1)"),
    (_obj(x={"anyOf": [{"type": "string"}], "default": "a"}), "ultra",
     "keyword 'default' is not allowed at the same level as anyOf"),
    (_obj(x={"anyOf": [{"type": "string", "description": "b"}], "description": "a"}), "ultra",
     "conflicting keywords found in anyOf with parent: keywords (description)"),
    (_obj(x={"type": "string", "$defs": {}}), "ultra", "keyword $defs must be at root level"),
    ({**_obj(a={"type": "string"}), "required": ["a", "a"]}, "ultra",
     "duplicate items in required array: a"),
]


@pytest.mark.parametrize("schema", ACCEPTED_BY_BOTH)
def test_schemas_walle_accepts_at_both_levels(schema: dict[str, Any]) -> None:
    assert check_moonshot(schema, "strict") == []
    assert check_moonshot(schema, "ultra") == []


@pytest.mark.parametrize(("schema", "level", "reason"), REFUSED)
def test_schemas_walle_refuses(schema: dict[str, Any], level: str, reason: str) -> None:
    problems = "\n".join(check_moonshot(schema, "ultra"))
    assert reason in problems, problems
    strict = "\n".join(check_moonshot(schema, "strict"))
    if level == "strict":
        assert reason in strict, strict
    else:
        assert strict == "", strict


def test_problems_use_walle_paths() -> None:
    schema = {"type": "object", "properties": {"order": {"type": "object", "properties": {
        "lines": {"type": "array", "items": {"anyOf": [{"type": "money"}]}}}}}}
    assert check_moonshot(schema) == [
        "At path 'properties.order.properties.lines.items.anyOf': invalid type 'money' "
        "(the JSON Schema types are array, boolean, integer, null, number, object, string)"]
    assert check_moonshot([1]) == ["At path 'root': schema must be a dict"]


# --------------------------------------------------------------------------- the normaliser


def test_refs_are_inlined_and_defs_removed() -> None:
    schema = {
        "$defs": {
            "Addr": {"title": "Addr", "type": "object",
                     "properties": {"city": {"type": "string"}, "geo": {"$ref": "#/$defs/Geo"}}},
            "Geo": {"type": "object", "properties": {"lat": {"type": "number"}}},
        },
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Addr"}, "work": {"$ref": "#/$defs/Addr"}},
    }
    out = _ok(schema)
    assert "$defs" not in out
    assert out["properties"]["home"] == out["properties"]["work"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "geo": {"type": "object", "properties": {"lat": {"type": "number"}}},
        },
    }


def test_keys_beside_a_ref_are_merged_into_the_inlined_copy() -> None:
    schema = {
        "definitions": {"Color": {"description": "颜色", "enum": ["red", "green"]}},
        "type": "object",
        "properties": {"c": {"$ref": "#/definitions/Color", "description": "车身颜色",
                             "default": "red"}},
    }
    assert _ok(schema)["properties"]["c"] == {
        "type": "string", "description": "车身颜色", "enum": ["red", "green"], "default": "red"}


def test_a_recursive_definition_stays_a_reference() -> None:
    schema = {
        "$defs": {"Node": {"type": "object", "description": "节点", "properties": {
            "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node", "description": "根"}},
    }
    out = _ok(schema)
    # walle refuses a description both beside the $ref and in its target
    assert out["properties"]["root"] == {"description": "根", "anyOf": [{"$ref": "#/$defs/Node"}]}
    assert out["$defs"]["Node"]["properties"]["kids"]["items"] == {"$ref": "#/$defs/Node"}


@pytest.mark.parametrize("ref", ["https://example.com/s.json", "#/$defs/Missing"])
def test_unresolvable_ref_is_refused(ref: str) -> None:
    with pytest.raises(ValueError, match=r"At path 'root\.properties\.x'"):
        to_moonshot(_obj(x={"$ref": ref}))


def test_all_of_is_merged_when_it_means_the_same() -> None:
    schema = {
        "$defs": {"A": {"type": "integer"}},
        "type": "object",
        "properties": {
            "a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "d"},
            "b": {"allOf": [{"type": "object", "properties": {"x": {"type": "string"}}},
                            {"properties": {"y": {"type": "string"}}, "required": ["y"]}]},
        },
    }
    props = _ok(schema)["properties"]
    assert props["a"] == {"type": "integer", "description": "d"}
    assert props["b"] == {"type": "object", "properties": {"x": {"type": "string"},
                                                           "y": {"type": "string"}},
                          "required": ["y"]}


def test_type_beside_any_of_moves_into_the_branches() -> None:
    schema = _obj(
        x={"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]},
        y={"type": "number", "oneOf": [{"minimum": 0}, {"type": "null"}]},
    )
    props = _ok(schema)["properties"]
    assert props["x"] == {"anyOf": [{"type": "string", "description": "Format: date"},
                                    {"type": "string", "description": "Format: date-time"}]}
    assert props["y"] == {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}


def test_root_type_beside_any_of_becomes_one_object_that_passes_our_own_check() -> None:
    schema = {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "phone": {"type": "string"}},
        "anyOf": [{"required": ["order_id"]}, {"required": ["phone"]}],
        "additionalProperties": False,
    }
    out = _ok(schema)
    assert out["type"] == "object" and "anyOf" not in out and "required" not in out
    assert out["properties"] == {"order_id": {"type": "string"}, "phone": {"type": "string"}}
    assert out["description"] == "Arguments of one of these forms: order_id; or phone"
    assert out["additionalProperties"] is False


def test_nested_keywords_beside_any_of_go_into_each_branch() -> None:
    schema = _obj(who={"type": "object", "properties": {"id": {"type": "integer"},
                                                        "name": {"type": "string"}},
                       "anyOf": [{"required": ["id"]}, {"required": ["name"]}],
                       "description": "按编号或姓名"})
    who = _ok(schema)["properties"]["who"]
    assert set(who) == {"description", "anyOf"}
    assert [b["required"] for b in who["anyOf"]] == [["id"], ["name"]]
    assert all(b["type"] == "object" and set(b["properties"]) == {"id", "name"}
               for b in who["anyOf"])


@pytest.mark.parametrize(("enum", "expected"), [
    (["a", "b"], {"type": "string", "enum": ["a", "b"]}),
    ([1, 2], {"type": "integer", "enum": [1, 2]}),
    ([1, 2.5], {"type": "number", "enum": [1, 2.5]}),
    ([True, False], {"type": "boolean", "enum": [True, False]}),
    (["已发货", "待付款"], {"type": "string", "enum": ["已发货", "待付款"]}),
])
def test_enum_only_property_gets_the_type_of_its_values(enum: list[Any], expected: Any) -> None:
    assert _ok(_obj(s={"enum": enum}))["properties"]["s"] == expected


def test_enum_of_mixed_types_splits_into_typed_branches() -> None:
    prop = _ok(_obj(m={"enum": ["a", 1, None, "b"], "description": "混合"}))["properties"]["m"]
    assert prop == {
        "description": "混合",
        "anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "integer", "enum": [1]},
                  {"type": "null", "enum": [None]}],
    }


@pytest.mark.parametrize(("const", "kind"), [("x", "string"), (3, "integer"), (None, "null"),
                                             (False, "boolean"), (1.5, "number")])
def test_const_becomes_a_one_value_enum(const: Any, kind: str) -> None:
    assert _ok(_obj(c={"const": const}))["properties"]["c"] == {"type": kind, "enum": [const]}


def test_an_enum_of_item_values_on_an_array_moves_to_its_items() -> None:
    prop = _ok(_obj(tags={"type": "array", "items": {"type": "string"},
                          "enum": ["新品", "热卖"]}))["properties"]["tags"]
    assert prop == {"type": "array", "items": {"type": "string", "enum": ["新品", "热卖"]}}


def test_tuples_become_arrays_of_any_of_their_item_types() -> None:
    props = _ok(_obj(
        pair={"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
              "minItems": 2, "maxItems": 2},
        same={"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}],
              "items": False},
        draft7={"type": "array", "items": [{"type": "string"}], "additionalItems": False},
    ))["properties"]
    assert props["pair"] == {"type": "array", "description": "2 items in this order: string, "
                             "integer", "items": {"anyOf": [{"type": "string"},
                                                            {"type": "integer"}]},
                             "minItems": 2, "maxItems": 2}
    assert props["same"] == {"type": "array", "items": {"type": "number"}, "maxItems": 2}
    assert props["draft7"] == {"type": "array", "items": {"type": "string"}}


def test_constraints_without_a_keyword_move_into_the_description() -> None:
    props = _ok(_obj(
        when={"type": "string", "format": "date-time", "description": "下单时间"},
        code={"type": "string", "pattern": "^A[0-9]+$"},
        price={"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
        qty={"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
        ids={"type": "array", "items": {"type": "integer"}, "uniqueItems": True,
             "examples": [[1, 2]]},
    ))["properties"]
    assert props["when"] == {"type": "string", "description": "下单时间 (format: date-time)"}
    assert props["code"]["description"] == 'Must match the regular expression "^A[0-9]+$"'
    assert props["price"]["description"] == "A multiple of 0.01; greater than 0"
    assert props["qty"] == {"type": "integer", "minimum": 1, "maximum": 99}
    assert props["ids"]["description"] == "Items must be unique; examples: [[1, 2]]"


def test_multiple_types_with_constraints_split_into_branches() -> None:
    prop = _ok(_obj(x={"type": ["string", "null"], "maxLength": 5, "description": "可空"}))
    assert prop["properties"]["x"] == {"description": "可空", "anyOf": [
        {"type": "string", "maxLength": 5}, {"type": "null"}]}


def test_defaults_that_are_not_literals_of_the_type_become_notes() -> None:
    props = _ok(_obj(
        n={"type": "integer", "default": 3},
        tags={"type": "array", "items": {"type": "string"}, "default": ["a"]},
        opt={"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        data={"type": "object", "default": {"$defs": None}},
    ))["properties"]
    assert props["n"] == {"type": "integer", "default": 3}
    assert props["tags"]["description"] == 'Default: ["a"]'
    assert "default" not in props["opt"]
    assert props["data"]["description"] == 'Default: {"$defs": null}'


def test_titles_are_dropped_unless_kept_and_a_property_named_title_stays() -> None:
    schema = {
        "title": "Args", "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string", "default": "无题"},
            "meta": {"title": "Meta", "type": "object", "properties": {
                "title": {"type": "string", "title": "T"}}},
        },
        "required": ["title"],
    }
    out = _ok(schema)
    assert "title" not in out
    assert out["properties"]["title"] == {"type": "string", "default": "无题"}
    assert out["properties"]["meta"]["properties"] == {"title": {"type": "string"}}
    kept = _ok(schema, keep_titles=True)
    assert kept["title"] == "Args" and kept["properties"]["meta"]["title"] == "Meta"


def test_empty_item_and_value_schemas_mean_anything() -> None:
    props = _ok(_obj(xs={"type": "array", "items": {}},
                     kv={"type": "object", "additionalProperties": {"title": "Any"}}))
    assert props["properties"]["xs"] == {"type": "array"}
    assert props["properties"]["kv"] == {"type": "object", "additionalProperties": True}


def test_root_object_gets_properties_and_schema_keyword_goes() -> None:
    assert _ok({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}) == {
        "type": "object", "properties": {}}


def test_key_order_is_stable_and_property_order_kept() -> None:
    a = {"required": ["b"], "properties": {"b": {"description": "B", "type": "integer"},
                                           "a": {"type": "string"}}, "type": "object"}
    b = {"type": "object", "properties": {"b": {"type": "integer", "description": "B"},
                                          "a": {"type": "string"}}, "required": ["b"]}
    out_a, out_b = to_moonshot(a), to_moonshot(b)
    assert json.dumps(out_a) == json.dumps(out_b)
    assert list(out_a) == ["type", "properties", "required"]
    assert list(out_a["properties"]) == ["b", "a"]
    assert list(out_a["properties"]["b"]) == ["type", "description"]


def test_input_is_not_modified() -> None:
    schema = {"$defs": {"A": {"title": "A", "enum": [1]}}, "type": "object",
              "properties": {"a": {"$ref": "#/$defs/A", "title": "a"}}}
    before = copy.deepcopy(schema)
    to_moonshot(schema)
    assert schema == before


@pytest.mark.parametrize("name", ["get_order", "_x", "a-b", "A" * 64])
def test_valid_tool_names(name: str) -> None:
    assert check_tool_name(name) is None


@pytest.mark.parametrize("name", ["1tool", "查订单", "a b", "a.b", "A" * 65, ""])
def test_invalid_tool_names(name: str) -> None:
    assert check_tool_name(name) is not None


# --------------------------------------------------------------------------- property

_KINDS = ["string", "integer", "number", "boolean", "null", "array", "object", "float"]
_EXTRA = st.sampled_from([
    {}, {"format": "date"}, {"pattern": "^[a-z]+$"}, {"const": "x"}, {"title": "T"},
    {"description": "说明"}, {"default": 1}, {"minimum": 0}, {"maxLength": 5},
    {"exclusiveMinimum": 0}, {"uniqueItems": True}, {"examples": ["e"]}, {"enum": ["a", "b"]},
    {"enum": [1, 2]}, {"minItems": 1}, {"$comment": "c"},
])
_NAMES = st.sampled_from(["a", "b", "订单", "required", "title", "x_y"])


def _schemas(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.builds(lambda kind, extra: {"type": kind, **extra},
                     st.sampled_from(_KINDS), _EXTRA)
    if depth == 0:
        return leaf
    child = _schemas(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda props, req, extra: {"type": "object", "properties": props,
                                             "required": req, **extra},
                  st.dictionaries(_NAMES, child, max_size=3), st.lists(_NAMES, max_size=2),
                  _EXTRA),
        st.builds(lambda items, extra: {"type": "array", "items": items, **extra}, child,
                  _EXTRA),
        st.builds(lambda branches, extra: {"anyOf": branches, **extra},
                  st.lists(child, min_size=1, max_size=3), _EXTRA),
        st.builds(lambda branches: {"oneOf": branches}, st.lists(child, min_size=1,
                                                                 max_size=2)),
        st.builds(lambda items: {"type": "array", "prefixItems": items},
                  st.lists(child, min_size=1, max_size=3)),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=st.dictionaries(_NAMES, _schemas(2), max_size=4), required=st.lists(_NAMES,
                                                                                 max_size=2))
def test_a_raw_schema_walle_accepts_is_never_refused_and_stays_valid(
        props: dict[str, Any], required: list[str]) -> None:
    schema = {"type": "object", "properties": props, "required": required}
    valid = jsonschema.Draft202012Validator(
        jsonschema.Draft202012Validator.META_SCHEMA).is_valid(schema)
    accepted = valid and check_moonshot(schema, "strict") == []
    try:
        ready = raw_schema(schema, "t")
    except ToolDefinitionError as error:
        assert not accepted, f"refused a valid schema walle's strict level accepts: {error}"
        assert "At path '" in str(error) or "not a valid JSON schema" in str(error)
        return
    assert check_moonshot(ready.parameters, "strict") == []
    jsonschema.Draft202012Validator.check_schema(ready.parameters)
    assert json.loads(json.dumps(ready.parameters)) == ready.parameters  # plain JSON
