"""`Tool` and `@tool`: callability, attributes, argument parsing and the model-facing errors,
running (worker threads, context injection), raw-schema tools, and result formatting."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import inspect
import json
import threading
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import BaseModel, Field

from kimi_agent import RunContext, Tool, tool
from kimi_agent.errors import ToolArgumentError, ToolDefinitionError
from kimi_agent.tooling._tool import format_result

pytestmark = pytest.mark.anyio


@dataclasses.dataclass
class Shop:
    name: str
    refunds: list[tuple[str, float]] = dataclasses.field(default_factory=list)


class Address(BaseModel):
    city: str
    street: str | None = None


class Line(BaseModel):
    sku: str
    qty: Annotated[int, Field(ge=1)] = 1


@tool
async def get_order(order_id: str) -> dict[str, str]:
    """查询订单状态。

    Args:
        order_id: 订单号，例如 "A1024"。
    """
    return {"order_id": order_id, "status": "已发货"}


@tool(timeout=5.0, requires_approval=True)
def refund(ctx: RunContext[Shop], order_id: str, amount: float) -> str:
    """退款。

    Args:
        order_id: 订单号。
        amount: 金额（元）。
    """
    ctx.deps.refunds.append((order_id, amount))
    return f"已为 {order_id} 退款 {amount} 元"


@tool
def ship(to: Address, lines: list[Line], when: dt.date, mode: Literal["air", "sea"] = "sea",
         note: str | None = None) -> str:
    """发货。"""
    return "ok"


def _context(deps: Any = None) -> RunContext[Any]:
    return RunContext(deps=deps, run_id="run-1")


def _error(t: Tool, raw: str | None) -> ToolArgumentError:
    with pytest.raises(ToolArgumentError) as info:
        t.parse_arguments(raw)
    assert info.value.tool_name == t.name
    assert info.value.message.startswith(f"Invalid arguments for tool '{t.name}':")
    assert info.value.message.endswith(f"Call '{t.name}' again with corrected arguments.")
    return info.value


# --------------------------------------------------------------------------- the object


async def test_a_tool_stays_callable_like_its_function() -> None:
    assert isinstance(get_order, Tool) and isinstance(refund, Tool)
    coroutine = get_order("A1")
    assert inspect.iscoroutine(coroutine)
    assert await coroutine == {"order_id": "A1", "status": "已发货"}
    shop = Shop("小店")
    assert refund(_context(shop), "A1", 3.0) == "已为 A1 退款 3.0 元"
    assert shop.refunds == [("A1", 3.0)]
    assert get_order.__name__ == "get_order"
    assert get_order.__doc__ is not None and get_order.__doc__.startswith("查询订单状态。")
    assert get_order.__wrapped__.__name__ == "get_order"  # type: ignore[attr-defined]
    assert list(inspect.signature(refund).parameters) == ["ctx", "order_id", "amount"]


def test_attributes_and_definition() -> None:
    assert (refund.name, refund.description) == ("refund", "退款。")
    assert (refund.timeout, refund.requires_approval, refund.sequential) == (5.0, True, False)
    assert (refund.is_async, get_order.is_async) == (False, True)
    assert (refund.context_param, get_order.context_param) == ("ctx", None)
    assert refund.definition == {
        "type": "function",
        "function": {
            "name": "refund",
            "description": "退款。",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "description": "订单号。"},
                    "amount": {"type": "number", "description": "金额（元）。"},
                },
                "required": ["order_id", "amount"],
                "additionalProperties": False,
            },
        },
    }
    assert refund.parameters is refund.definition["function"]["parameters"]


def test_options_and_overrides() -> None:
    @tool(name="lookup-order", description="按订单号查询。", sequential=True)
    def f(order_id: str) -> str:
        """Ignored."""
        return order_id

    assert (f.name, f.description, f.sequential, f.__name__) == (
        "lookup-order", "按订单号查询。", True, "f")
    again = tool(f)
    assert again is f
    renamed = tool(name="other")(f)
    assert (renamed.name, renamed.description, renamed.sequential) == (
        "other", "按订单号查询。", True)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5"])
def test_bad_timeouts_are_refused(timeout: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="timeout"):
        tool(timeout=timeout)(lambda_free)


def lambda_free(x: int) -> int:
    return x


def test_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError, match="unknown tool option"):
        tool(retries=3)  # type: ignore[call-overload]


def test_callable_objects_and_partials() -> None:
    class Counter:
        async def __call__(self, step: int) -> int:
            return step

    counter = Tool(Counter(), name="counter")
    assert counter.is_async
    assert counter.parameters["properties"] == {"step": {"type": "integer"}}

    def scale(factor: float, value: float) -> float:
        return factor * value

    double = Tool(functools.partial(scale, 2.0), name="double")
    assert list(double.parameters["properties"]) == ["value"]


# --------------------------------------------------------------------------- arguments


def test_arguments_are_validated_and_converted() -> None:
    kwargs = ship.parse_arguments(json.dumps({
        "to": {"city": "上海"}, "lines": [{"sku": "B-1", "qty": "2"}, {"sku": "C"}],
        "when": "2024-05-01",
    }, ensure_ascii=False))
    assert kwargs == {
        "to": Address(city="上海"), "lines": [Line(sku="B-1", qty=2), Line(sku="C")],
        "when": dt.date(2024, 5, 1), "mode": "sea", "note": None,
    }
    assert refund.parse_arguments('{"order_id": "A1", "amount": 3}') == {
        "order_id": "A1", "amount": 3.0}


def test_lenient_json() -> None:
    @tool
    def echo(text: str = "") -> str:
        return text

    assert echo.parse_arguments(None) == {"text": ""}
    assert echo.parse_arguments("") == {"text": ""}
    assert echo.parse_arguments("null") == {"text": ""}
    assert echo.parse_arguments('{"text": "第一行\n第二行"}') == {"text": "第一行\n第二行"}
    assert echo.parse_arguments(json.dumps(json.dumps({"text": "套娃"}))) == {"text": "套娃"}


def test_wrong_type_message_names_field_expectation_and_value() -> None:
    error = _error(refund, '{"order_id": "A1", "amount": "十块"}')
    assert '- amount: expected a number, got "十块"' in error.message
    assert error.problems == ['amount: expected a number, got "十块"']


def test_missing_and_unexpected_arguments() -> None:
    error = _error(refund, '{"order": "A1", "amount": 3}')
    assert "- order_id: missing required argument (expected a string)" in error.message
    assert "- order: unexpected argument" in error.message
    assert ("'refund' takes a JSON object with: order_id (a string, required), "
            "amount (a number, required).") in error.message


def test_nested_errors_have_paths() -> None:
    error = _error(ship, json.dumps({
        "to": {"street": "南京路"}, "lines": [{"sku": "A"}, {"sku": "B", "qty": 0}],
        "when": "明天", "mode": "rail",
    }, ensure_ascii=False))
    message = error.message
    assert "- to.city: missing required field" in message
    assert "- lines[1].qty: expected greater than or equal to 1, got 0" in message
    assert '- when: expected a date string such as "2024-05-01", got "明天"' in message
    assert "- mode: expected one of 'air' or 'sea', got \"rail\"" in message


def test_bad_json_quotes_position_and_input() -> None:
    error = _error(refund, '{"order_id": "A1" "amount": 3}')
    assert "not valid JSON" in error.message
    assert "line 1, column 19" in error.message
    assert 'received: {"order_id": "A1" "amount": 3}' in error.message


def test_long_bad_json_is_truncated_around_the_error() -> None:
    raw = '{"order_id": "' + "A" * 5000 + '", "amount": }'
    message = _error(refund, raw).message
    assert len(message) < 800
    assert '"amount": }' in message
    assert f"({len(raw)} characters in all)" in message


@pytest.mark.parametrize(("raw", "kind"), [("[1, 2]", "an array"), ('"A1"', "a string"),
                                           ("3", "a number")])
def test_arguments_must_be_an_object(raw: str, kind: str) -> None:
    assert f"the arguments must be a JSON object, got {kind}" in _error(refund, raw).message


# --------------------------------------------------------------------------- running


async def test_sync_tools_run_in_a_worker_thread_with_context() -> None:
    seen: list[int] = []

    @tool
    def where(ctx: RunContext[Shop], label: str) -> str:
        seen.append(threading.get_ident())
        return f"{ctx.deps.name}:{label}"

    result = await where.run(where.parse_arguments('{"label": "甲"}'), _context(Shop("店")))
    assert result == "店:甲"
    assert seen and seen[0] != threading.get_ident()


async def test_async_tools_are_awaited_on_the_loop() -> None:
    assert await get_order.run({"order_id": "A9"}, None) == {"order_id": "A9", "status": "已发货"}


async def test_a_blocking_sync_tool_does_not_block_the_loop() -> None:
    release = threading.Event()

    @tool
    def slow() -> str:
        release.wait(5)
        return "done"

    async with anyio.create_task_group() as tg:
        results: list[str] = []

        async def call() -> None:
            results.append(await slow.run({}, None))

        tg.start_soon(call)
        await anyio.sleep(0.05)
        release.set()  # the loop is free to get here while `slow` blocks its thread
    assert results == ["done"]


async def test_context_is_required_when_declared() -> None:
    with pytest.raises(TypeError, match="needs a RunContext"):
        await refund.run({"order_id": "A1", "amount": 1.0}, None)


async def test_positional_only_parameters() -> None:
    @tool
    def f(ctx: RunContext[int], a: int, /, b: int = 2) -> int:
        return ctx.deps * 100 + a * 10 + b

    assert await f.run(f.parse_arguments('{"a": 3}'), _context(1)) == 132


# --------------------------------------------------------------------------- raw schemas


WEATHER_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "WeatherArgs",
    "type": "object",
    "definitions": {"Unit": {"enum": ["c", "f"], "description": "温度单位"}},
    "properties": {
        "city": {"type": "string", "description": "城市名", "minLength": 1},
        "unit": {"$ref": "#/definitions/Unit"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "opts": {"type": "array", "items": [{"type": "string"}, {"type": "boolean"}]},
    },
    "required": ["city"],
    "additionalProperties": False,
}


async def test_raw_schema_tool_is_normalised_and_validated() -> None:
    calls: list[dict[str, Any]] = []

    def weather(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "晴"

    t = Tool.from_schema("weather", "查询天气。", WEATHER_SCHEMA, weather, timeout=3)
    assert t.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "城市名", "minLength": 1},
            "unit": {"type": "string", "description": "温度单位", "enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "opts": {"type": "array", "description": "2 items in this order: string, boolean",
                     "items": {"anyOf": [{"type": "string"}, {"type": "boolean"}]}},
        },
        "required": ["city"],
        "additionalProperties": False,
        "title": "WeatherArgs",  # walle takes titles; a raw schema keeps its own
    }
    assert (t.timeout, t.is_async, t.context_param) == (3.0, False, None)
    kwargs = t.parse_arguments('{"city": "北京", "unit": "c"}')
    assert await t.run(kwargs, None) == "晴"
    assert calls == [{"city": "北京", "unit": "c"}]


def test_raw_schema_errors_are_written_for_the_model() -> None:
    t = Tool.from_schema("weather", "查询天气。", WEATHER_SCHEMA, lambda **kw: "")
    message = _error(t, '{"unit": "k", "days": 9, "city": 3, "when": "今天"}').message
    assert "- city: missing required argument" not in message
    assert "- city: expected a string, got 3" in message
    assert '- unit: expected one of ["c", "f"], got "k"' in message
    assert "- days: expected a value <= 7, got 9" in message
    assert "- when: unexpected argument" in message
    missing = _error(t, "{}").message
    assert "- city: missing required argument (expected a string)" in missing


async def test_raw_schema_tool_with_context() -> None:
    async def handler(ctx: RunContext[str], **kwargs: Any) -> str:
        return f"{ctx.deps}:{kwargs['city']}"

    t = Tool.from_schema("w", "", {"type": "object", "properties": {"city": {"type": "string"}}},
                         handler)
    assert t.context_param == "ctx" and t.is_async
    assert await t.run({"city": "杭州"}, _context("deps")) == "deps:杭州"


@pytest.mark.parametrize(("schema", "fragment"), [
    ({"type": "object", "properties": {"x": {"type": "strin"}}},
     "At path 'properties.x': invalid type 'strin'"),
    ({"type": "object", "properties": {"x": {"type": "float"}}}, "invalid type 'float'"),
    ({"type": "object", "properties": {"required": {"type": "string"}}},
     "At path 'properties': property name 'required' is reserved"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
     "At path 'required': required property 'b' is not defined in properties"),
    ({"type": "object", "properties": {"paid": {"type": "boolean", "enum": ["yes", "no"]}}},
     "enum value (\"yes\") does not match any type in ['boolean']"),
    ({"type": "array", "items": {"type": "string"}}, "must be an object schema"),
    ({"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "required": ["n"],
      "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}},
                      "required": ["n"]}}},
     "infinite recursion"),
    ({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}},
     "only references inside the schema"),
])
def test_raw_schema_problems_are_refused_at_creation(schema: dict[str, Any],
                                                     fragment: str) -> None:
    with pytest.raises(ToolDefinitionError, match="tool 'bad'") as info:
        Tool.from_schema("bad", "", schema, lambda **kw: None)
    assert fragment in str(info.value), str(info.value)


# --------------------------------------------------------------------------- results


class Status(enum.Enum):
    SHIPPED = "已发货"


@dataclasses.dataclass
class Parcel:
    id: uuid.UUID
    at: dt.datetime
    price: Decimal
    status: Status


@pytest.mark.parametrize(("value", "expected"), [
    ("已发货", "已发货"),
    (None, ""),
    ({"状态": "已发货", "件数": 2}, '{"状态":"已发货","件数":2}'),
    (["甲", 1, None, True], '["甲",1,null,true]'),
    (("a", 1), '["a",1]'),
    (Address(city="北京"), '{"city":"北京","street":null}'),
    (Status.SHIPPED, "已发货"),
    (42, "42"),
    (b"\xe4\xbd\xa0\xe5\xa5\xbd", "你好"),
])
def test_format_result(value: Any, expected: str) -> None:
    assert format_result(value) == expected


def test_format_result_serialises_rich_values_without_escapes() -> None:
    parcel = Parcel(uuid.UUID(int=1), dt.datetime(2024, 5, 1, 9, 30), Decimal("12.50"),
                    Status.SHIPPED)
    text = format_result({"parcel": parcel, "tags": {"易碎"}})
    assert "\\u" not in text
    assert json.loads(text) == {"parcel": {
        "id": "00000000-0000-0000-0000-000000000001", "at": "2024-05-01T09:30:00",
        "price": "12.50", "status": "已发货"}, "tags": ["易碎"]}
    assert json.loads(format_result(parcel))["status"] == "已发货"


def test_format_result_falls_back_to_str() -> None:
    class Thing:
        def __str__(self) -> str:
            return "东西"

    assert format_result(Thing()) == "东西"
    assert json.loads(format_result({"thing": Thing()})) == {"thing": "东西"}


async def test_bound_methods_become_tools_and_unbound_ones_are_explained() -> None:
    class Store:
        def __init__(self) -> None:
            self.stock = {"A": 3}

        def count(self, sku: str) -> int:
            """库存数量。"""
            return self.stock.get(sku, 0)

    store = Store()
    count = tool(store.count)
    assert count.parameters["properties"] == {"sku": {"type": "string"}}
    assert count.description == "库存数量。"
    assert await count.run(count.parse_arguments('{"sku": "A"}'), None) == 3
    with pytest.raises(ToolDefinitionError, match="bound method"):
        tool(Store.count)
