"""`current_time`: the date and time now in a given time zone (default Asia/Shanghai).

当前时间。Models do not know what day it is; shops need it for "when will it arrive",
"is the 7-day return window over" and opening hours. The answer carries the ISO time, the
date and weekday written the Chinese way and the UTC offset.

Time zones come from `zoneinfo`: the system's tz database on Linux and macOS, else the
`tzdata` package (Windows has no system database, so install `tzdata` there). Without any
database, the two zones a Chinese shop needs most still work: Asia/Shanghai (UTC+8 all
year, no daylight saving since 1991) and UTC. A few Chinese city names are accepted as
aliases ("北京时间", "上海", "香港", …).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kimi_agent import tool
from kimi_agent_tools.errors import InvalidInputError

__all__ = ["WEEKDAYS", "ZONE_ALIASES", "current_time", "now_in", "resolve_zone"]

WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")

ZONE_ALIASES: dict[str, str] = {
    "北京时间": "Asia/Shanghai",
    "北京": "Asia/Shanghai",
    "上海": "Asia/Shanghai",
    "中国": "Asia/Shanghai",
    "Asia/Beijing": "Asia/Shanghai",
    "香港": "Asia/Hong_Kong",
    "台北": "Asia/Taipei",
    "东京": "Asia/Tokyo",
    "首尔": "Asia/Seoul",
    "新加坡": "Asia/Singapore",
    "伦敦": "Europe/London",
    "巴黎": "Europe/Paris",
    "纽约": "America/New_York",
    "洛杉矶": "America/Los_Angeles",
}

# Used only when no tz database is installed at all.
_FALLBACK: dict[str, dt.tzinfo] = {
    "Asia/Shanghai": dt.timezone(dt.timedelta(hours=8), "CST"),
    "UTC": dt.UTC,
    "Etc/UTC": dt.UTC,
}


def _utcnow() -> dt.datetime:
    """The current time (a seam for tests)."""
    return dt.datetime.now(dt.UTC)


def resolve_zone(name: str) -> tuple[str, dt.tzinfo]:
    """The canonical name and tzinfo of a zone name or alias; `InvalidInputError` if unknown."""
    key = ZONE_ALIASES.get(name.strip(), name.strip())
    if not key:
        raise InvalidInputError("时区不能为空。The time zone must not be empty.")
    try:
        return key, ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        if key in _FALLBACK:
            return key, _FALLBACK[key]
        raise InvalidInputError(
            f"未知时区：{name!r}。请使用 IANA 时区名，例如 'Asia/Shanghai'。"
            f"Unknown time zone {name!r}; use an IANA name such as 'Asia/Shanghai' or "
            "'America/New_York'."
        ) from error


def now_in(name: str = "Asia/Shanghai") -> dict[str, Any]:
    """The current time in zone `name` (see `current_time` for the fields)."""
    key, zone = resolve_zone(name)
    now = _utcnow().astimezone(zone)
    offset = now.strftime("%z")
    return {
        "timezone": key,
        "iso": now.isoformat(timespec="seconds"),
        "date": f"{now.year}年{now.month}月{now.day}日",
        "time": now.strftime("%H:%M:%S"),
        "weekday": WEEKDAYS[now.weekday()],
        "utc_offset": f"{offset[:3]}:{offset[3:]}",
    }


@tool
def current_time(timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """查询当前日期、时间和星期几。Get the current date, time and weekday in a time zone.

    Args:
        timezone: IANA 时区名，默认北京时间 / IANA time zone name, e.g. "Asia/Shanghai",
            "America/New_York".
    """
    return now_in(timezone)
