"""`to_moonshot`: each rule of Moonshot's JSON-schema dialect (docs/wire/schema-dialect.md)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from kimi_agent.tooling._dialect import check_moonshot, check_tool_name, to_moonshot


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    out = to_moonshot(schema)
    assert check_moonshot(out) == []
    jsonschema.Draft202012Validator.check_schema(out)
    return out


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
    assert "$ref" not in json.dumps(out)
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
    prop = _ok(schema)["properties"]["c"]
    assert prop == {"type": "string", "description": "车身颜色", "enum": ["red", "green"],
                    "default": "red"}


def test_recursive_ref_is_refused() -> None:
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {
            "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
    }
    with pytest.raises(ValueError, match="recursive"):
        to_moonshot(schema)


@pytest.mark.parametrize("ref", ["https://example.com/s.json", "#/$defs/Missing"])
def test_unresolvable_ref_is_refused(ref: str) -> None:
    schema = {"type": "object", "properties": {"x": {"$ref": ref}}}
    with pytest.raises(ValueError):
        to_moonshot(schema)


def test_single_all_of_is_merged() -> None:
    schema = {
        "$defs": {"A": {"type": "integer"}},
        "type": "object",
        "properties": {"a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "d"}},
    }
    assert _ok(schema)["properties"]["a"] == {"type": "integer", "description": "d"}


def test_type_moves_into_any_of_branches() -> None:
    schema = {"type": "object", "properties": {
        "x": {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]},
        "y": {"type": "number", "oneOf": [{"minimum": 0}, {"type": "null"}]},
    }}
    props = _ok(schema)["properties"]
    assert "type" not in props["x"]
    assert props["x"]["anyOf"] == [{"type": "string", "format": "date"},
                                   {"type": "string", "format": "date-time"}]
    assert props["y"]["oneOf"] == [{"type": "number", "minimum": 0}, {"type": "null"}]


@pytest.mark.parametrize(("enum", "expected"), [
    (["a", "b"], {"type": "string", "enum": ["a", "b"]}),
    ([1, 2], {"type": "integer", "enum": [1, 2]}),
    ([1, 2.5], {"type": "number", "enum": [1, 2.5]}),
    ([True, False], {"type": "boolean", "enum": [True, False]}),
    (["已发货", "待付款"], {"type": "string", "enum": ["已发货", "待付款"]}),
])
def test_enum_only_property_gets_the_type_of_its_values(enum: list[Any], expected: Any) -> None:
    schema = {"type": "object", "properties": {"s": {"enum": enum}}}
    assert _ok(schema)["properties"]["s"] == expected


def test_enum_of_mixed_types_splits_into_typed_branches() -> None:
    schema = {"type": "object", "properties": {"m": {"enum": ["a", 1, None, "b"],
                                                     "description": "混合"}}}
    assert _ok(schema)["properties"]["m"] == {
        "description": "混合",
        "anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "integer", "enum": [1]},
                  {"type": "null", "enum": [None]}],
    }


@pytest.mark.parametrize(("const", "kind"), [("x", "string"), (3, "integer"), (None, "null"),
                                             (False, "boolean"), (1.5, "number")])
def test_const_gets_the_type_of_its_value(const: Any, kind: str) -> None:
    schema = {"type": "object", "properties": {"c": {"const": const}}}
    assert _ok(schema)["properties"]["c"] == {"type": kind, "const": const}


def test_list_valued_items_become_prefix_items() -> None:
    schema = {"type": "object", "properties": {
        "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
        "head": {"type": "array", "items": [{"type": "string"}],
                 "additionalItems": {"type": "number"}},
    }}
    props = _ok(schema)["properties"]
    assert props["pair"] == {"type": "array",
                             "prefixItems": [{"type": "string"}, {"type": "integer"}]}
    assert props["head"] == {"type": "array", "items": {"type": "number"},
                             "prefixItems": [{"type": "string"}]}


def test_titles_are_dropped_but_a_property_named_title_is_kept() -> None:
    schema = {
        "title": "Args", "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string", "default": "无题"},
            "meta": {"title": "Meta", "type": "object", "default": {"title": "data, not schema"},
                     "properties": {"title": {"type": "string", "title": "T"}}},
        },
        "required": ["title"],
    }
    out = _ok(schema)
    assert "title" not in out
    assert out["properties"]["title"] == {"type": "string", "default": "无题"}
    assert out["properties"]["meta"]["default"] == {"title": "data, not schema"}
    assert out["properties"]["meta"]["properties"] == {"title": {"type": "string"}}
    assert out["required"] == ["title"]


def test_empty_item_and_value_schemas_mean_anything() -> None:
    schema = {"type": "object", "properties": {
        "xs": {"type": "array", "items": {}},
        "kv": {"type": "object", "additionalProperties": {"title": "Any"}},
    }}
    props = _ok(schema)["properties"]
    assert props["xs"] == {"type": "array"}
    assert props["kv"] == {"type": "object", "additionalProperties": True}


def test_root_object_gets_properties_and_schema_keyword_goes() -> None:
    out = _ok({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})
    assert out == {"type": "object", "properties": {}}


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


def test_check_moonshot_reports_each_rule() -> None:
    bad = {"type": "object", "title": "x", "$defs": {}, "properties": {
        "r": {"$ref": "#/$defs/A"},
        "u": {"type": "string", "anyOf": [{"type": "string"}]},
        "e": {"enum": [1]},
        "t": {"type": "array", "items": [{"type": "string"}]},
    }}
    problems = "\n".join(check_moonshot(bad))
    for fragment in ("'$ref' is not supported", "'$defs' is not supported",
                     "'title' is not allowed", "'type' must not stand beside 'anyOf'",
                     "properties.e': type is not defined", "'items' must be a schema object"):
        assert fragment in problems
    assert check_moonshot(to_moonshot({**bad, "$defs": {"A": {"type": "string"}}})) == []


@pytest.mark.parametrize("name", ["get_order", "_x", "a-b", "A" * 64])
def test_valid_tool_names(name: str) -> None:
    assert check_tool_name(name) is None


@pytest.mark.parametrize("name", ["1tool", "查订单", "a b", "a.b", "A" * 65, ""])
def test_invalid_tool_names(name: str) -> None:
    assert check_tool_name(name) is not None
