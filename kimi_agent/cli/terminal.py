"""Showing an agent's run in a terminal: streamed text, tool calls, approvals, usage.

Shared by `kimi-agent chat` and the demo (`kimi_agent_tools.demo`), so both look alike:

    👤 顾客：我的订单 A1024 到哪了？
    🤖 客服：好的，我帮您查一下。
      🔧 get_order(order_id="A1024")
      🔧 get_shipping_status(order_id="A1024")
      ✓ get_order  121 ms
      ✓ get_shipping_status  182 ms
      ⇉ 2 个工具并发执行：共 183 ms（逐个执行约 303 ms）

`EventPrinter` renders the typed events of `Agent.stream` as they arrive (text is printed
delta by delta, tool calls when they start and when they finish, with their durations), for
`Agent.stream` and `Agent.resume_stream` alike.
Colours are used only on a terminal and never when `NO_COLOR` is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kimi_agent._usage import RunUsage
from kimi_agent.agent import _events as ev
from kimi_agent.agent._result import PendingApproval, ToolCallRecord

__all__ = [
    "EventPrinter",
    "Style",
    "format_call",
    "usage_summary",
    "user_data_dir",
]

_MAX_VALUE = 60


@dataclass(frozen=True)
class Style:
    """ANSI colours, or nothing when the output is not a terminal."""

    enabled: bool

    @classmethod
    def for_stream(cls, stream: TextIO) -> Style:
        isatty = getattr(stream, "isatty", None)
        tty = bool(isatty()) if callable(isatty) else False
        return cls(tty and not os.environ.get("NO_COLOR"))

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)


def format_call(name: str, arguments: str | dict[str, Any]) -> str:
    """`get_order(order_id="A1024")`: a call as a person reads it (long values shortened)."""
    if isinstance(arguments, str):
        try:
            parsed: Any = json.loads(arguments or "{}", strict=False)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return f"{name}({_shorten(arguments)})"
        arguments = parsed
    parts = []
    for key, value in arguments.items():
        shown = json.dumps(value, ensure_ascii=False, default=str)
        parts.append(f"{key}={_shorten(shown)}")
    return f"{name}({', '.join(parts)})"


def _shorten(text: str, limit: int = _MAX_VALUE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@dataclass
class EventPrinter:
    """Prints the events of a streamed run as they come.

    `speaker` prefixes each stretch of the model's text (e.g. "🤖 客服："). Reasoning is not
    printed, only a "思考中…" marker while the model thinks, so a long chain of thought does
    not flood the screen. Call `close()` after the run (or after an interruption) to end
    the current line.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    speaker: str = "🤖 助手："
    style: Style | None = None
    show_reasoning: bool = False
    _in_text: bool = False
    _thinking: bool = False
    _step_calls: int = 0

    def __post_init__(self) -> None:
        if self.style is None:
            self.style = Style.for_stream(self.out)

    @property
    def _s(self) -> Style:
        assert self.style is not None
        return self.style

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _end_line(self) -> None:
        if self._thinking and not self._in_text:
            self._drop_marker()
        elif self._in_text:
            self._write("\n")
        self._in_text = False
        self._thinking = False

    def _drop_marker(self) -> None:
        """On a terminal the "thinking" marker is erased; in a log it stays on its line."""
        self._write("\r\033[K" if self._s.enabled else "\n")
        self._thinking = False

    def close(self) -> None:
        """End the current line, if a text or a marker is still open."""
        self._end_line()

    def handle(self, event: ev.Event) -> None:
        """Render one event."""
        if isinstance(event, ev.RunStarted):
            # say what the run waits for until the first byte comes (a silent gateway is
            # reported by the client's phase time-outs, not by a frozen screen)
            self._end_line()
            self._write(self._s.dim(f"  ⏳ 等待模型 {event.model} 回复 (waiting for "
                                    f"{event.model})") + "\n")
        elif isinstance(event, ev.ReasoningDelta):
            if self.show_reasoning:
                self._text(self._s.dim(event.text))
            elif not self._thinking and not self._in_text:
                self._write(self._s.dim("💭 思考中…"))
                self._thinking = True
        elif isinstance(event, ev.TextDelta):
            self._text(event.text)
        elif isinstance(event, ev.ToolCallStarted):
            self._end_line()
            self._step_calls += 1
            self._write(f"  🔧 {self._s.cyan(format_call(event.name, event.arguments))}\n")
        elif isinstance(event, ev.ToolCallFinished):
            self._end_line()
            self._write(record_line(event.record, self._s) + "\n")
        elif isinstance(event, ev.HandoffActivated):
            self._end_line()
            self._write(self._s.cyan(f"  ⇄ 转接 hand-off: {event.source} → {event.target}")
                        + "\n")
        elif isinstance(event, ev.FallbackActivated):
            self._end_line()
            self._write(self._s.yellow(f"  ↪ 切换到备用模型 {event.to_model}（{event.reason}）")
                        + "\n")
        elif isinstance(event, ev.StepFinished):
            self._end_line()
            line = overlap_line(event.step.tool_calls, self._s)
            if line:
                self._write(line + "\n")
            self._step_calls = 0
        elif isinstance(event, ev.RunFinished):
            self._end_line()

    def _text(self, text: str) -> None:
        if self._thinking:
            self._drop_marker()
        if not self._in_text:
            self._write(self._s.bold(self.speaker))
            self._in_text = True
        self._write(text)


def record_line(record: ToolCallRecord, style: Style) -> str:
    """`  ✓ get_order  121 ms`, `  ✗ …  error`, or `  ⏸ … 等待人工审批`."""
    if record.status == "ok":
        return f"  {style.green('✓')} {record.name}  {style.dim(_ms(record.duration))}"
    if record.status == "pending_approval":
        return f"  {style.yellow('⏸')} {record.name}  {style.yellow('需要人工审批，暂不执行')}"
    if record.status == "rejected":
        return f"  {style.red('✗')} {record.name}  {style.red('已被拒绝')}"
    error = _shorten(record.error or record.result, 100)
    return f"  {style.red('✗')} {record.name}  {style.dim(_ms(record.duration))}  {error}"


def overlap_line(records: Iterable[ToolCallRecord], style: Style) -> str | None:
    """For a step of several calls that ran: how long they took together and one by one."""
    ran = [r for r in records if r.status in ("ok", "error") and r.finished_at > 0]
    if len(ran) < 2:
        return None
    wall = max(r.finished_at for r in ran) - min(r.started_at for r in ran)
    serial = sum(r.duration for r in ran)
    if wall < serial * 0.9:
        text = (f"⇉ {len(ran)} 个工具并发执行：共 {_ms(wall)}（逐个执行约 {_ms(serial)}）"
                f" / {len(ran)} tools ran concurrently")
    else:
        text = f"→ {len(ran)} 个工具依次执行：共 {_ms(wall)} / {len(ran)} tools ran in turn"
    return "  " + style.dim(text)


def pending_lines(pending: Iterable[PendingApproval], style: Style) -> list[str]:
    """One line per call waiting for a person's decision."""
    return [f"  {style.yellow('⏸')} {format_call(p.tool, p.arguments)}" for p in pending]


def usage_summary(usage: RunUsage, models: Iterable[str], style: Style | None = None) -> str:
    """A few lines with requests, tokens (prompt, cached, completion) and the models used."""
    style = style or Style(False)
    names = ", ".join(dict.fromkeys(models)) or "—"
    cached = (f"（其中缓存命中 cached {usage.cached_tokens:,}）" if usage.prompt_tokens else "")
    lines = [
        style.bold("── 用量 usage ──"),
        f"  请求 requests：{usage.requests}",
        f"  输入 prompt tokens：{usage.prompt_tokens:,}{cached}",
        f"  输出 completion tokens：{usage.completion_tokens:,}"
        + (f"（含推理 reasoning {usage.reasoning_tokens:,}）" if usage.reasoning_tokens else ""),
        f"  模型 models：{names}",
    ]
    return "\n".join(lines)


def user_data_dir(app: str = "kimi-agent") -> Path:
    """Where the command-line programs keep their files between runs, per user.

    `$KIMI_AGENT_HOME` if set; else `%LOCALAPPDATA%` on Windows, `~/Library/Application
    Support` on macOS, `$XDG_DATA_HOME` or `~/.local/share` elsewhere.
    """
    override = os.environ.get("KIMI_AGENT_HOME")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / app
