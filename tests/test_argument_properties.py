"""Property tests of tool-argument parsing (issue 13): whatever string the model sends as
`arguments`, a tool either gets its keyword arguments or raises `ToolArgumentError` (which
the model reads) — never another exception; valid arguments round-trip exactly, Chinese
text and raw control characters included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_agent import Tool, tool
from kimi_agent.errors import ToolArgumentError


@tool
def ship(order_id: str, quantity: int, tags: list[str], note: str | None = None,
         weight: float = 1.0) -> str:
    """发货。

    Args:
        order_id: 订单号。
        quantity: 件数。
        tags: 标签。
        note: 备注。
        weight: 重量（公斤）。
    """
    return order_id


def _reserve(sku: str, count: int = 1) -> str:
    return sku


raw_schema = Tool.from_schema("reserve", "按原始 JSON schema 声明参数的工具：预留库存。", {
    "type": "object", "properties": {"sku": {"type": "string"},
                                     "count": {"type": "integer", "minimum": 1}},
    "required": ["sku"]}, _reserve)


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
VALID = st.fixed_dictionaries(
    {"order_id": TEXT, "quantity": st.integers(-10**12, 10**12), "tags": st.lists(TEXT,
                                                                                 max_size=4)},
    optional={"note": st.none() | TEXT,
              "weight": st.floats(allow_nan=False, allow_infinity=False, width=32)})
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | TEXT, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(VALID)
def test_valid_arguments_round_trip(arguments: dict[str, Any]) -> None:
    parsed = ship.parse_arguments(json.dumps(arguments, ensure_ascii=False))
    expected = {"note": None, "weight": 1.0, **arguments}
    assert parsed == expected


@settings(max_examples=100, deadline=None)
@given(VALID, st.sampled_from(["\n", "\t", "\r", "\x01"]))
def test_raw_control_characters_in_strings_pass(arguments: dict[str, Any], control: str
                                                ) -> None:
    arguments = {**arguments, "order_id": f"A{control}1024"}
    raw = json.dumps(arguments, ensure_ascii=False).replace(json.dumps(control)[1:-1], control)
    assert ship.parse_arguments(raw)["order_id"] == f"A{control}1024"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), JSON.map(lambda v: json.dumps(v, ensure_ascii=False))))
@pytest.mark.parametrize("target", [ship, raw_schema], ids=["typed", "raw-schema"])
def test_any_string_gives_arguments_or_a_tool_argument_error(target: Any, raw: str) -> None:
    try:
        parsed = target.parse_arguments(raw)
    except ToolArgumentError as error:
        assert error.tool_name == target.name and error.message
        return
    assert isinstance(parsed, dict)


@pytest.mark.parametrize("raw", [
    '{"order_id": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"order_id": "A1", "quantity": ' + "9" * 5000 + ', "tags": []}',
], ids=["nested-too-deep", "huge-integer"])
def test_pathological_json_is_a_tool_argument_error(raw: str) -> None:
    with pytest.raises(ToolArgumentError):
        ship.parse_arguments(raw)
