"""Signature + docstring → parameters schema: every supported type, descriptions, refusals."""

from __future__ import annotations

import datetime as dt
import enum
import json
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Optional, Union

import jsonschema
import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from kimi_agent import RunContext, tool
from kimi_agent.errors import ConfigurationError, ToolDefinitionError
from kimi_agent.tooling._dialect import check_moonshot
from kimi_agent.tooling._schema import function_schema, output_schema


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    """收货地址。"""

    city: str = Field(description="城市")
    street: str | None = None


class Order(BaseModel):
    order_id: str
    ship_to: Address
    tags: list[str] = []


@dataclass
class Item:
    sku: str
    qty: int = 1


class Contact(TypedDict):
    name: str
    phone: NotRequired[str]


def _props(func: Callable[..., Any]) -> dict[str, Any]:
    params = function_schema(func).parameters
    assert check_moonshot(params, "ultra") == []
    jsonschema.Draft202012Validator.check_schema(params)
    return params["properties"]  # type: ignore[no-any-return]


def _one(annotation: Any, **extra: Any) -> dict[str, Any]:
    """The schema of a single parameter `x: annotation`."""
    def f(x: Any) -> None: ...
    f.__annotations__ = {"x": annotation}
    return _props(f)["x"]


@pytest.mark.parametrize(("annotation", "expected"), [
    (str, {"type": "string"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (bool, {"type": "boolean"}),
    (None, {"type": "null"}),
    (Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),  # noqa: UP045
    (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
    (Literal["asc", "desc"], {"type": "string", "enum": ["asc", "desc"]}),
    (Literal["only"], {"type": "string", "enum": ["only"]}),
    (Literal["a", 1], {"anyOf": [{"type": "string", "enum": ["a"]},
                                 {"type": "integer", "enum": [1]}]}),
    (Color, {"type": "string", "enum": ["red", "green"]}),
    (Priority, {"type": "integer", "enum": [1, 2]}),
    (list[int], {"type": "array", "items": {"type": "integer"}}),
    (list[Any], {"type": "array"}),
    (tuple[str, int], {"type": "array", "description": "2 items in this order: string, integer",
                       "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                       "minItems": 2, "maxItems": 2}),
    (tuple[int, int], {"type": "array", "items": {"type": "integer"}, "minItems": 2,
                       "maxItems": 2}),
    (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
    (set[str], {"type": "array", "description": "Items must be unique",
                "items": {"type": "string"}}),
    (frozenset[int], {"type": "array", "description": "Items must be unique",
                      "items": {"type": "integer"}}),
    (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
    (dict[str, Any], {"type": "object", "additionalProperties": True}),
    (dt.datetime, {"type": "string", "description": "Format: date-time"}),
    (dt.date, {"type": "string", "description": "Format: date"}),
    (dt.time, {"type": "string", "description": "Format: time"}),
    (uuid.UUID, {"type": "string", "description": "Format: uuid"}),
    (Decimal, {"anyOf": [{"type": "number"}, {"type": "string"}]}),
])
def test_simple_types(annotation: Any, expected: dict[str, Any]) -> None:
    schema = _one(annotation)
    assert schema == expected


def test_nested_pydantic_model_is_inlined() -> None:
    assert _one(Order) == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "ship_to": {
                "type": "object", "description": "收货地址。",
                "properties": {
                    "city": {"type": "string", "description": "城市"},
                    "street": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["city"],
            },
            "tags": {"type": "array", "description": "Default: []",
                     "items": {"type": "string"}},
        },
        "required": ["order_id", "ship_to"],
    }


def test_optional_model_and_list_of_dataclasses() -> None:
    assert _one(Address | None)["anyOf"][1] == {"type": "null"}
    assert _one(Address | None)["anyOf"][0]["properties"]["city"]["type"] == "string"
    assert _one(list[Item]) == {"type": "array", "items": {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "default": 1}},
        "required": ["sku"],
        "additionalProperties": False,  # the arguments' extra="forbid" reaches dataclasses
    }}


def test_typed_dict() -> None:
    assert _one(Contact) == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }


def test_annotated_field_constraints_and_description() -> None:
    schema = _one(Annotated[int, Field(ge=1, le=10, description="数量")])
    assert schema == {"type": "integer", "description": "数量", "minimum": 1, "maximum": 10}
    text = _one(Annotated[str, Field(min_length=2, pattern=r"^A\d+$")])
    # walle's default level has no pattern: the model reads it, pydantic enforces it
    assert text == {"type": "string", "minLength": 2,
                    "description": 'Must match the regular expression "^A\\\\d+$"'}
    bounded = _one(Annotated[int, Field(gt=0, lt=10, multiple_of=2)])
    assert bounded == {"type": "integer", "minimum": 1, "maximum": 9,
                       "description": "A multiple of 2"}
    ratio = _one(Annotated[float, Field(gt=0, le=1)])
    assert ratio == {"type": "number", "maximum": 1, "description": "Greater than 0"}


def test_defaults_make_parameters_optional() -> None:
    def search(query: str, limit: int = 5, color: Color = Color.RED,
               since: dt.date | None = None) -> None: ...

    params = function_schema(search).parameters
    assert params["required"] == ["query"]
    assert params["properties"]["limit"] == {"type": "integer", "default": 5}
    assert params["properties"]["color"]["default"] == "red"
    assert "default" not in params["properties"]["since"]  # optional says it
    assert params["additionalProperties"] is False
    assert list(params) == ["type", "properties", "required", "additionalProperties"]


def test_a_default_that_is_not_json_is_left_out() -> None:
    sentinel = object()

    def f(x: int = sentinel) -> None: ...  # type: ignore[assignment]

    assert function_schema(f).parameters["properties"]["x"] == {"type": "integer"}


def test_no_parameters() -> None:
    def now() -> str:
        """当前时间。"""
        return ""

    schema = function_schema(now)
    assert schema.parameters == {"type": "object", "properties": {}, "required": [],
                                 "additionalProperties": False}
    assert schema.description == "当前时间。"


def test_descriptions_from_docstring_and_field_override() -> None:
    def refund(order_id: str, amount: Annotated[float, Field(description="金额（元）")],
               reason: str = Field("", description="原因（来自 Field）"),
               ship_to: Address | None = None) -> str:
        """为订单办理退款。

        退款会原路返回。

        Args:
            order_id: 订单号，例如 "A1024"。
            amount: 这一条会被 Field 覆盖。
            reason: 这一条也会被覆盖。
            ship_to: 退货地址。
        """
        return ""

    schema = function_schema(refund)
    assert schema.description == "为订单办理退款。\n\n退款会原路返回。"
    props = schema.parameters["properties"]
    assert props["order_id"]["description"] == '订单号，例如 "A1024"。'
    assert props["amount"]["description"] == "金额（元）"
    assert props["reason"]["description"] == "原因（来自 Field）"
    assert props["ship_to"]["description"] == "退货地址。"  # over the model's own docstring
    assert schema.parameters["required"] == ["order_id", "amount"]


def test_name_and_description_overrides() -> None:
    def f(x: int) -> None:
        """Doc."""

    schema = function_schema(f, name="other", description="说明")
    assert (schema.name, schema.description) == ("other", "说明")


def test_parameter_names_that_clash_with_pydantic_or_schema_words() -> None:
    def f(json: str, model_config: int, title: str, properties: bool, _private: float) -> None:
        ...

    params = function_schema(f).parameters
    assert list(params["properties"]) == ["json", "model_config", "title", "properties",
                                          "_private"]
    assert params["properties"]["title"] == {"type": "string"}
    assert params["required"] == ["json", "model_config", "title", "properties", "_private"]


def test_run_context_is_hidden() -> None:
    def refund(ctx: RunContext[dict[str, int]], order_id: str) -> None: ...
    def bare(order_id: str, context: RunContext) -> None: ...  # type: ignore[type-arg]

    for func, name in ((refund, "ctx"), (bare, "context")):
        schema = function_schema(func)
        assert schema.context_param == name
        assert list(schema.parameters["properties"]) == ["order_id"]
        assert name not in json.dumps(schema.parameters)


# --------------------------------------------------------------------------- refusals


def _refused(func: Callable[..., Any], *fragments: str) -> str:
    with pytest.raises(ToolDefinitionError) as info:
        tool(func)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_annotation_is_refused() -> None:
    def refund(order_id: str, amount) -> None: ...  # type: ignore[no-untyped-def]

    _refused(refund, "tool 'refund': parameter 'amount' has no type annotation")


def test_var_args_are_refused() -> None:
    def a(*items: str) -> None: ...
    def b(x: int, **options: str) -> None: ...

    _refused(a, "tool 'a'", "'*items'")
    _refused(b, "tool 'b'", "'**options'")


@pytest.mark.parametrize("annotation", [socket.socket, Callable[[int], int], type[int]])
def test_types_json_cannot_carry_are_refused(annotation: Any) -> None:
    def lookup(handle: Any) -> None: ...
    lookup.__annotations__ = {"handle": annotation}

    _refused(lookup, "tool 'lookup'", "parameter 'handle'")


@pytest.mark.parametrize("annotation", [Any, object, int | Any])
def test_untyped_parameters_are_refused(annotation: Any) -> None:
    def f(value: Any) -> None: ...
    f.__annotations__ = {"value": annotation}

    _refused(f, "parameter 'value'", "concrete type")


@pytest.mark.parametrize("annotation", [dict[int, str], list[dict[tuple[int, int], str]]])
def test_non_string_dict_keys_are_refused(annotation: Any) -> None:
    def f(table: Any) -> None: ...
    f.__annotations__ = {"table": annotation}

    _refused(f, "tool 'f': parameter 'table'", "keys are strings")


def test_non_string_keys_inside_a_model_are_refused() -> None:
    class Bad(BaseModel):
        counts: dict[int, int]

    def f(bad: Bad) -> None: ...

    _refused(f, "parameter 'bad.counts'", "keys are strings")


def test_string_like_keys_are_accepted() -> None:
    assert _one(dict[Literal["a", "b"], int])["type"] == "object"
    assert _one(dict[Color, int])["type"] == "object"


def test_recursive_model_stays_a_reference_under_defs() -> None:
    class Node(BaseModel):
        """树的节点。"""

        value: int
        children: list[Node] = []

    def f(tree: Node, label: str = "") -> None:
        """处理一棵树。

        Args:
            tree: 要处理的树。
        """

    t = tool(f)
    params = t.parameters
    assert check_moonshot(params, "ultra") == []
    assert params["properties"]["tree"] == {"description": "要处理的树。",
                                            "anyOf": [{"$ref": "#/$defs/Node"}]}
    assert params["$defs"]["Node"]["properties"]["children"]["items"] == {
        "$ref": "#/$defs/Node"}
    jsonschema.Draft202012Validator.check_schema(params)
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}
    assert t.parse_arguments(json.dumps({"tree": tree}))["tree"].children[0].value == 2


def test_recursion_without_an_end_is_refused_as_walle_would() -> None:
    class Loop(BaseModel):
        next: Loop

    def f(start: Loop) -> None: ...

    _refused(f, "tool 'f'", "infinite recursion")


def test_two_contexts_and_nested_context_are_refused() -> None:
    def two(a: RunContext[int], b: RunContext[int]) -> None: ...
    def nested(a: list[RunContext[int]]) -> None: ...

    _refused(two, "'a' and 'b' are both RunContext")
    _refused(nested, "parameter 'a'", "RunContext")


def test_generators_and_bad_names_are_refused() -> None:
    def gen(x: int) -> Any:
        yield x

    _refused(gen, "generator")
    with pytest.raises(ToolDefinitionError, match="must match"):
        tool(lambda: None)
    with pytest.raises(ToolDefinitionError, match="must match"):
        tool(name="查订单")(lambda: None)


def test_typing_typed_dict_gives_a_clear_error() -> None:
    from typing import TypedDict as PlainTypedDict

    class Old(PlainTypedDict):
        a: int

    def f(x: Old) -> None: ...

    _refused(f, "parameter 'x'", "typing_extensions.TypedDict")


# --------------------------------------------------------------------------- output


def test_output_schema_is_normalised() -> None:
    schema = output_schema(Order)
    assert "$defs" not in schema and "title" not in json.dumps(schema)
    assert schema["properties"]["ship_to"]["properties"]["city"] == {
        "type": "string", "description": "城市"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_output_schema_refuses_what_has_no_schema() -> None:
    with pytest.raises(ConfigurationError):
        output_schema(socket.socket)


def test_a_default_that_looks_like_a_schema_is_data() -> None:
    # pydantic rewrites $refs by walking the whole schema, defaults included: a default with
    # a "$defs" or "$ref" key used to crash it (or be rewritten)
    weird = [{"$defs": None, "$ref": "#/$defs/Item"}]

    def f(rows: list[dict[str, str | None]] = weird, item: Item | None = None) -> None: ...

    t = tool(f)
    rows = t.parameters["properties"]["rows"]
    assert rows["description"] == 'Default: [{"$defs": null, "$ref": "#/$defs/Item"}]'
    assert check_moonshot(t.parameters, "ultra") == []
    assert t.parse_arguments("{}")["rows"] == weird
