"""Property test: random signatures → schemas the gateway accepts, and arguments that round-trip.

hypothesis draws parameter names (awkward ones included: `json`, `title`, `properties`,
Chinese identifiers), types built from every supported kind, and defaults; a function with that
signature is built on the fly. For each: the schema passes the Draft 2020-12 meta-schema and
walle's default level of Moonshot's dialect (or the tool is refused, naming a parameter whose
name the dialect reserves); values drawn for the types, sent as the model would (JSON),
validate against the published schema and come back from `parse_arguments` equal to what was
drawn.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
import json
import keyword
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python
from typing_extensions import TypedDict

from kimi_agent import ToolDefinitionError, tool
from kimi_agent.tooling._dialect import RESERVED_NAMES, check_moonshot


class Size(enum.Enum):
    SMALL = "小"
    LARGE = "大"


class Level(enum.IntEnum):
    ONE = 1
    TWO = 2


class Item(BaseModel):
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Contact(TypedDict):
    name: str
    phone: str


# A kind is (annotation, strategy of values of that annotation).
Kind = tuple[Any, st.SearchStrategy[Any]]

_text = st.text(max_size=8)
_zones = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
_datetimes = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
                          timezones=st.none() | _zones)
_floats = st.floats(allow_nan=False, allow_infinity=False)

BASE: list[Kind] = [
    (str, _text),
    (int, st.integers()),
    (float, _floats),
    (bool, st.booleans()),
    (None, st.none()),
    (dt.datetime, _datetimes),
    (dt.date, st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 1, 1))),
    (dt.time, st.times()),
    (uuid.UUID, st.uuids()),
    (Decimal, st.decimals(places=2, min_value=-(10**6), max_value=10**6)),
    (Literal["asc", "desc"], st.sampled_from(["asc", "desc"])),
    (Literal["x", 1, None], st.sampled_from(["x", 1, None])),
    (Size, st.sampled_from(Size)),
    (Level, st.sampled_from(Level)),
    (set[str], st.sets(_text, max_size=3)),
    (frozenset[int], st.frozensets(st.integers(), max_size=3)),
    (Annotated[int, Field(ge=0, le=100, description="数量")], st.integers(0, 100)),
    (Annotated[str, Field(min_length=1, max_length=5)], st.text(min_size=1, max_size=5)),
    (int | str, st.integers() | _text),
    (Item, st.builds(Item, sku=_text, qty=st.integers())),
    (Point, st.builds(Point, x=_floats, y=_floats)),
    (Contact, st.fixed_dictionaries({"name": _text, "phone": _text})),
]


def _extend(inner: st.SearchStrategy[Kind]) -> st.SearchStrategy[Kind]:
    return st.one_of(
        inner.map(lambda k: (list[k[0]], st.lists(k[1], max_size=3))),  # type: ignore[name-defined]
        inner.map(lambda k: (dict[str, k[0]],  # type: ignore[name-defined]
                             st.dictionaries(_text, k[1], max_size=3))),
        inner.map(lambda k: (Optional[k[0]], st.none() | k[1])),  # noqa: UP045
        st.tuples(inner, inner).map(
            lambda ks: (tuple[ks[0][0], ks[1][0]], st.tuples(ks[0][1], ks[1][1]))),
    )


KINDS: st.SearchStrategy[Kind] = st.recursive(st.sampled_from(BASE), _extend, max_leaves=4)

_NAMES = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
    st.sampled_from(["json", "title", "properties", "type", "required", "anyOf",
                     "additionalProperties", "model_config",
                     "schema", "copy", "_private", "订单号", "城市"]),
).filter(lambda n: n.isidentifier() and not keyword.iskeyword(n))


@st.composite
def signatures(draw: st.DrawFn) -> list[tuple[str, Any, st.SearchStrategy[Any], Any]]:
    """[(name, annotation, values, default or inspect.Parameter.empty)]"""
    names = draw(st.lists(_NAMES, min_size=0, max_size=5, unique=True))
    params = []
    for name in names:
        annotation, values = draw(KINDS)
        default = draw(values) if draw(st.booleans()) else inspect.Parameter.empty
        params.append((name, annotation, values, default))
    return params


def _function(params: list[tuple[str, Any, st.SearchStrategy[Any], Any]]) -> Any:
    def generated(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    generated.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                          default=default)
        for name, annotation, _, default in params
    ])
    generated.__annotations__ = {name: annotation for name, annotation, _, _ in params}
    return generated


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), params=signatures())
def test_random_signatures_give_valid_schemas_and_round_trip(
    data: st.DataObject, params: list[tuple[str, Any, st.SearchStrategy[Any], Any]]
) -> None:
    reserved = [name for name, *_ in params if name in RESERVED_NAMES]
    if reserved:  # walle refuses these property names: the tool is refused, clearly
        with pytest.raises(ToolDefinitionError, match=f"parameter {reserved[0]!r} cannot"):
            tool(_function(params))
        return
    t = tool(_function(params))
    schema = t.parameters
    jsonschema.Draft202012Validator.check_schema(schema)
    assert check_moonshot(schema, "ultra") == []
    assert list(schema["properties"]) == [name for name, *_ in params]
    assert schema["required"] == [n for n, _, _, d in params if d is inspect.Parameter.empty]
    json.dumps(t.definition, ensure_ascii=False)  # the definition is plain JSON

    sent: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for name, _, values, default in params:
        if default is inspect.Parameter.empty or data.draw(st.booleans(), label=f"send {name}"):
            sent[name] = expected[name] = data.draw(values, label=name)
        else:
            expected[name] = default
    raw = json.dumps(to_jsonable_python(sent), ensure_ascii=False)
    jsonschema.Draft202012Validator(schema).validate(json.loads(raw))
    assert t.parse_arguments(raw) == expected
