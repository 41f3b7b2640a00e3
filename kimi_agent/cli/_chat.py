"""`kimi-agent chat`: talk to an agent with your tools in the terminal.

    kimi-agent chat --tools MODULE[:ATTR] [--deps MODULE:ATTR] [--session ID] [--model M]

On the real gateway when `BYTESPIKE_API_KEY` is set; otherwise on the built-in gateway
simulator, whose default responder echoes what you type (and the banner says so) — enough to
try the terminal, the sessions and Ctrl-C without a key. `--sim-script FILE` gives the
simulator a script (JSON/YAML turns, see `kimi_agent.testing` scripts`), to rehearse a bot's
tool calls and approvals offline.

How it is built, and why: the prompt is read by the main thread with plain `input()`, and
the agent runs on an event loop in a background thread (an anyio blocking portal). So a
Ctrl-C always lands in the main thread, as a `KeyboardInterrupt`: while a reply streams it
cancels that reply only (the user's message is already in the session, and the step in
flight is dropped whole, so the history stays valid) and the chat goes on; at the prompt it
reminds how to leave; Ctrl-D, `exit` or `quit` leave. Calls that need approval are put to
the user as y/n questions at the prompt.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TextIO

import anyio
import anyio.from_thread

from kimi_agent.agent._agent import Agent
from kimi_agent.agent._result import PendingApproval, RunResult
from kimi_agent.cli.terminal import (
    EventPrinter,
    Style,
    format_call,
    user_data_dir,
)
from kimi_agent.errors import KimiAgentError
from kimi_agent.gateway._client import DEFAULT_BASE_URL, GatewayClient
from kimi_agent.sessions._protocol import MemorySession, Session
from kimi_agent.tooling._registry import ToolRegistry
from kimi_agent.tracing._summary import TraceSummary
from kimi_agent.wire import AssistantMessage, Message, UserMessage

__all__ = ["ChatSession", "load_deps", "run_chat"]

EXIT_WORDS = frozenset({"exit", "quit", "/exit", "/quit", ":q", "退出"})
PROMPT = "你> "
REJECTED = "用户在终端拒绝了该操作 (declined by the user at the terminal)"


def load_deps(target: str) -> Any:
    """The deps named by `MODULE:ATTR`: the attribute itself, or what it returns when it is a
    function (a factory with no arguments)."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"--deps needs MODULE:ATTR, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r}: {error}") from None
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return value() if callable(value) and not isinstance(value, type) else value


class ChatSession:
    """The async side of the chat: one agent and one session, driven from the portal thread.

    `reply` and `decide` run one turn each inside a cancel scope that `interrupt` cancels.
    """

    def __init__(self, agent: Agent[str], session: Session, deps: Any, out: TextIO,
                 trace: TraceSummary | None = None) -> None:
        self.agent = agent
        self.trace = trace
        self.session = session
        self.deps = deps
        self.out = out
        self.style = Style.for_stream(out)
        self.printer = EventPrinter(out, speaker="助手> ", style=self.style)
        self.pending: list[PendingApproval] = []
        self._scope: anyio.CancelScope | None = None

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def interrupt(self) -> None:
        """Stop the turn under way (called through the portal on Ctrl-C)."""
        if self._scope is not None:
            self._scope.cancel()

    async def history(self) -> list[Message]:
        return await self.session.get_items()

    async def reply(self, text: str) -> None:
        """Stream the agent's answer to `text`."""
        async def turn() -> RunResult[str]:
            async with self.agent.stream(text, deps=self.deps, session=self.session) as run:
                async for event in run:
                    self.printer.handle(event)
            return run.result

        await self._guarded(turn)

    async def decide(self, approved: list[str], rejected: dict[str, str]) -> None:
        """Continue a run whose calls waited for approval, streaming the rest of it."""
        async def turn() -> RunResult[str]:
            async with self.agent.resume_stream(self.session, approved=approved,
                                                rejected=rejected, deps=self.deps) as run:
                async for event in run:
                    self.printer.handle(event)
            return run.result

        await self._guarded(turn)

    async def load_pending(self) -> None:
        """Calls left waiting for approval by an earlier chat on this session."""
        self.pending = await self.agent.pending_approvals(self.session)

    async def _guarded(self, turn: Callable[[], Any]) -> None:
        self.pending = []
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                result: RunResult[str] = await turn()
            except KimiAgentError as error:
                self.printer.close()
                self.say(self.style.red(f"出错了 error: {error}"))
                return
            finally:
                self._scope = None
            self.printer.close()
            self._report(result)
            if self.trace is not None:
                self.say(self.style.dim(self.trace.render()))
        if scope.cancelled_caught:
            self.printer.close()
            self.say(self.style.yellow("[已中断 interrupted — 本条回复已停止，会话已保留]"))

    def _report(self, result: RunResult[str]) -> None:
        if result.status == "pending_approval":
            self.pending = list(result.pending_approvals)
        elif result.status == "handoff" and result.handoff is not None:
            handoff = result.handoff
            self.say(self.style.yellow(f"⇢ 已转人工 hand-off: reason={handoff.reason}"
                                       f" queue={handoff.queue or '-'}"))
            if handoff.summary:
                self.say(self.style.dim(f"  {handoff.summary}"))


def run_chat(args: argparse.Namespace, *, stdin: TextIO | None = None,
             out: TextIO | None = None) -> int:
    """The body of `kimi-agent chat`; returns the exit status."""
    out = out or sys.stdout
    registry = _registry(args)
    deps = load_deps(args.deps) if getattr(args, "deps", None) else None
    live = bool(os.environ.get("BYTESPIKE_API_KEY"))
    style = Style.for_stream(out)
    fallback = None if str(args.fallback).lower() in ("", "none") else args.fallback
    with contextlib.ExitStack() as stack:
        base_url, api_key = stack.enter_context(_gateway(live, args, out, style))
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        client = GatewayClient(base_url, api_key)
        stack.callback(portal.call, client.aclose)
        trace = TraceSummary() if getattr(args, "trace", False) else None
        agent: Agent[str] = Agent(args.model, fallback, instructions=args.instructions,
                                  hooks=[trace] if trace is not None else (),
                                  tools=registry, client=client)
        session = _session(args, stack)
        chat = ChatSession(agent, session, deps, out, trace)
        _banner(chat, args, registry, portal.call(chat.history))
        return _repl(chat, portal, stdin or sys.stdin)
    return 0  # pragma: no cover  (mypy: ExitStack may swallow exceptions)


def _registry(args: argparse.Namespace) -> ToolRegistry:
    if not getattr(args, "tools", None):
        return ToolRegistry()
    from kimi_agent.cli._loader import load_tools

    registry: ToolRegistry = load_tools(args.tools)
    return registry


@contextlib.contextmanager
def _gateway(live: bool, args: argparse.Namespace, out: TextIO, style: Style
             ) -> Iterator[tuple[str | None, str | None]]:
    """(base URL, key): the environment's for the real gateway, else a simulator's."""
    if live:
        url = os.environ.get("BYTESPIKE_BASE_URL") or DEFAULT_BASE_URL
        out.write(style.green(f"在线：使用网关 {url} (BYTESPIKE_API_KEY is set — talking to the "
                              "real gateway)") + "\n")
        yield None, None
        return
    try:
        from kimi_agent.testing import GatewaySimulator, Latency, echo_responder
    except ImportError:
        raise ValueError("no BYTESPIKE_API_KEY, and the offline simulator needs the 'sim' "
                         "extra: pip install 'kimi-agent[sim]'") from None
    script = getattr(args, "sim_script", None)
    if script:
        note = (f"离线：未设置 BYTESPIKE_API_KEY，使用内置网关模拟器和脚本 {script}，脚本之外的消息"
                f"会被回显 (no API key set — the built-in simulator plays {script} and echoes "
                "the rest)")
    else:
        note = ("离线：未设置 BYTESPIKE_API_KEY，使用内置网关模拟器，它只会回显您的消息 "
                "(no API key set — the built-in simulator echoes your messages)")
    out.write(style.yellow(note) + "\n")
    latency = Latency(first_token=float(args.sim_first_token),
                      tokens_per_second=float(args.sim_tps))
    sim = GatewaySimulator(script=script, responder=echo_responder, latency=latency)
    with sim.serve_in_thread() as base_url:
        yield base_url, sim.api_key


def _session(args: argparse.Namespace, stack: contextlib.ExitStack) -> Session:
    if not args.session:
        return MemorySession("chat")
    from kimi_agent.sessions._sqlite import SQLiteSession

    path = args.db or str(user_data_dir() / "chat.db")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    session = SQLiteSession(args.session, path)
    stack.callback(session.close)
    return session


def _banner(chat: ChatSession, args: argparse.Namespace, registry: ToolRegistry,
            history: list[Message]) -> None:
    style = chat.style
    fallback = f"（备用 {args.fallback}）" if str(args.fallback).lower() != "none" else ""
    tools = ", ".join(registry.names()) or "无 none"
    chat.say(style.bold(f"kimi-agent chat — 模型 {args.model}{fallback}，工具 tools: {tools}"))
    if args.session:
        path = getattr(chat.session, "path", "")
        if history:
            chat.say(style.cyan(f"继续会话 {args.session!r}（{len(history)} 条消息）— {path}"))
            for line in _recent(history):
                chat.say(style.dim(line))
        else:
            chat.say(style.cyan(f"新会话 {args.session!r} — {path}"))
    else:
        chat.say(style.dim("临时会话：对话不保存（用 --session ID 保存）"))
    chat.say(style.dim("回车发送；Ctrl-C 中断当前回复；Ctrl-D 或 exit 退出。"))


def _recent(history: list[Message], count: int = 4) -> list[str]:
    lines = []
    for message in history:
        if isinstance(message, UserMessage) and isinstance(message.content, str):
            lines.append(f"  你：{_clip(message.content)}")
        elif isinstance(message, AssistantMessage) and message.text and not message.tool_calls:
            lines.append(f"  助手：{_clip(message.text)}")
    return lines[-count:]


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _repl(chat: ChatSession, portal: anyio.from_thread.BlockingPortal, stdin: TextIO) -> int:
    """Read, run, repeat, until Ctrl-D or an exit word."""
    _wait(portal, portal.start_task_soon(chat.load_pending), chat)
    _settle_approvals(chat, portal, stdin)
    interrupted_at_prompt = False
    while True:
        try:
            line = _read(PROMPT, chat.out, stdin)
        except EOFError:
            chat.say("")
            return 0
        except KeyboardInterrupt:
            if interrupted_at_prompt:
                chat.say("")
                return 130
            interrupted_at_prompt = True
            chat.say("\n（再按一次 Ctrl-C、按 Ctrl-D 或输入 exit 退出）")
            continue
        interrupted_at_prompt = False
        text = line.strip()
        if not text:
            continue
        if text.lower() in EXIT_WORDS:
            return 0
        if chat.pending and not _settle_approvals(chat, portal, stdin):
            chat.say("（消息未发送：请先决定待审批的操作 — decide the pending calls first）")
            continue
        _wait(portal, portal.start_task_soon(chat.reply, text), chat)
        _settle_approvals(chat, portal, stdin)


def _settle_approvals(chat: ChatSession, portal: anyio.from_thread.BlockingPortal,
                      stdin: TextIO) -> bool:
    """Ask y/n for each call waiting for approval, then continue the run; repeat if the
    continued run asks again. False when the user left the question undecided (Ctrl-C or
    end of input): the calls stay pending, in the session too."""
    while chat.pending:
        approved: list[str] = []
        rejected: dict[str, str] = {}
        chat.say(chat.style.yellow(f"⏸ {len(chat.pending)} 个操作需要您批准 (approval needed)"))
        for call in chat.pending:
            question = f"  {format_call(call.tool, call.arguments)} — 批准吗？approve? [y/N] "
            try:
                answer = _read(question, chat.out, stdin)
            except (EOFError, KeyboardInterrupt):
                chat.say("\n  未决定：操作仍在等待审批 (still pending)。")
                return False
            if answer.strip().lower() in ("y", "yes", "是", "好", "批准"):
                approved.append(call.call_id)
            else:
                rejected[call.call_id] = REJECTED
        _wait(portal, portal.start_task_soon(chat.decide, approved, rejected), chat)
    return True


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _read(prompt: str, out: TextIO, stdin: TextIO) -> str:
    """A line from the user. On a terminal through `input()` (line editing, history);
    from a pipe the line is echoed, so that a transcript shows what was said."""
    if stdin is sys.stdin and out is sys.stdout and _isatty(stdin):
        return input(prompt)
    out.write(prompt)
    out.flush()
    line = stdin.readline()
    if not line:
        raise EOFError
    line = line.rstrip("\r\n")
    out.write(line + "\n")
    out.flush()
    return line


def _wait(portal: anyio.from_thread.BlockingPortal, future: Future[None],
          chat: ChatSession) -> None:
    """Wait for a turn; a Ctrl-C meanwhile interrupts the turn, not the chat."""
    while True:
        try:
            future.result()
            return
        except KeyboardInterrupt:
            portal.call(chat.interrupt)
