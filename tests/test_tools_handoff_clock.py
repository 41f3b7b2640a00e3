"""`handoff_to_human` (ends the run with a routable hand-off) and `current_time`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, get_args
from zoneinfo import ZoneInfoNotFoundError

import pytest
from kimi_agent_tools import InvalidInputError, current_time, handoff_to_human
from kimi_agent_tools import clock as clock_module
from kimi_agent_tools.handoff import HANDOFF_REASON_TEXT, HandoffReason

from kimi_agent import RunContext, Tool
from kimi_agent.tooling._dialect import check_moonshot

# --------------------------------------------------------------------------- hand-off


@dataclass
class QueueDeps:
    handoff_queues: dict[str, str] = field(default_factory=dict)


def test_handoff_schema_offers_the_routing_reasons() -> None:
    assert isinstance(handoff_to_human, Tool)
    params = handoff_to_human.parameters
    assert set(params["properties"]) == {"reason", "summary"}  # ctx hidden
    assert params["properties"]["reason"]["enum"] == list(get_args(HandoffReason))
    assert params["required"] == ["reason", "summary"]
    assert check_moonshot(params) == []
    assert set(HANDOFF_REASON_TEXT) == set(get_args(HandoffReason))  # every reason has a label


def test_handoff_signals_the_run_and_answers_the_model() -> None:
    ctx: RunContext[Any] = RunContext(deps=None, run_id="r1", tool_call_id="call:0")
    message = handoff_to_human(ctx, "complaint", "客户投诉快递员态度差，要求道歉。订单 A1024。")
    request = ctx.signals.handoff
    assert request is not None
    assert request.reason == "complaint"
    assert request.summary == "客户投诉快递员态度差，要求道歉。订单 A1024。"
    assert request.queue is None
    assert request.tool_call_id == "call:0"
    assert "已为您转接人工客服" in message
    assert "投诉" in message and "human" in message


def test_handoff_queue_comes_from_deps() -> None:
    deps = QueueDeps({"refund_dispute": "refunds-team"})
    ctx: RunContext[QueueDeps] = RunContext(deps=deps, run_id="r2")
    handoff_to_human(ctx, "refund_dispute", "客户不同意只退一半运费")
    assert ctx.signals.handoff is not None
    assert ctx.signals.handoff.queue == "refunds-team"
    other: RunContext[QueueDeps] = RunContext(deps=deps, run_id="r3")
    handoff_to_human(other, "other", "其他问题")
    assert other.signals.handoff is not None and other.signals.handoff.queue is None


def test_handoff_needs_a_summary() -> None:
    ctx: RunContext[Any] = RunContext(deps=None, run_id="r4")
    with pytest.raises(InvalidInputError, match="简要说明"):
        handoff_to_human(ctx, "complaint", "  ")
    assert ctx.signals.handoff is None  # a failed call does not end the run


# --------------------------------------------------------------------------- clock

FIXED = dt.datetime(2025, 5, 9, 6, 30, 15, tzinfo=dt.UTC)  # a Friday


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "_utcnow", lambda: FIXED)


def test_current_time_schema() -> None:
    assert isinstance(current_time, Tool)
    params = current_time.parameters
    assert params["properties"]["timezone"]["type"] == "string"
    assert params["properties"]["timezone"]["default"] == "Asia/Shanghai"
    assert params.get("required", []) == []
    assert check_moonshot(params) == []


@pytest.mark.usefixtures("frozen")
def test_default_is_beijing_time_with_chinese_weekday() -> None:
    assert current_time() == {
        "timezone": "Asia/Shanghai",
        "iso": "2025-05-09T14:30:15+08:00",
        "date": "2025年5月9日",
        "time": "14:30:15",
        "weekday": "星期五",
        "utc_offset": "+08:00",
    }


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize(
    ("zone", "iso", "weekday"),
    [
        ("America/New_York", "2025-05-09T02:30:15-04:00", "星期五"),  # daylight saving time
        ("Pacific/Auckland", "2025-05-09T18:30:15+12:00", "星期五"),
        ("Pacific/Honolulu", "2025-05-08T20:30:15-10:00", "星期四"),  # the day before
        ("UTC", "2025-05-09T06:30:15+00:00", "星期五"),
        ("北京时间", "2025-05-09T14:30:15+08:00", "星期五"),  # Chinese aliases
        ("东京", "2025-05-09T15:30:15+09:00", "星期五"),
    ],
)
def test_other_zones_and_aliases(zone: str, iso: str, weekday: str) -> None:
    now = current_time(zone)
    assert (now["iso"], now["weekday"]) == (iso, weekday)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Asia/Beijing/Extra", "../etc/passwd", ""])
def test_unknown_zone_is_an_error_naming_it(zone: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        current_time(zone)
    if zone:
        assert repr(zone) in str(error.value)
        assert "未知时区" in str(error.value)


@pytest.mark.usefixtures("frozen")
def test_shanghai_and_utc_work_without_a_tz_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(key: str) -> Any:
        raise ZoneInfoNotFoundError(key)

    monkeypatch.setattr(clock_module, "ZoneInfo", missing)
    assert current_time()["iso"] == "2025-05-09T14:30:15+08:00"
    assert current_time("UTC")["utc_offset"] == "+00:00"
    with pytest.raises(InvalidInputError, match="Europe/Paris"):
        current_time("Europe/Paris")
