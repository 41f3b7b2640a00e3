"""The live session with one MCP server: opened on first use, shared, reopened after a loss.

The SDK's client is a stack of async context managers with task groups inside (the stdio
transport, for one, keeps reader and writer tasks), which must be entered and left by the
same task. A run may be the first to need the server, another run may be using it, and the
agent may close it from a third task, so the client lives in a task of its own (an owner),
spawned outside any run: runs only send requests through it. The owner leaves the client
when it is told to close or when the transport's read side ends (the process died, the
server closed the stream), and the next request opens a new one.

Server-side changes to the tool list reach `on_change`: as `notifications/tools/list_changed`
on handshake-era connections, or through a `subscriptions/listen` stream on 2026-07-28 ones.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import anyio
import httpx2
from mcp import Client
from mcp import MCPError as SDKError
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.shared.message import SessionMessage
from mcp_types import CONNECTION_CLOSED, CallToolResult, Implementation, ListToolsResult
from mcp_types import Tool as MCPTool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from kimi_agent import __version__
from kimi_agent.mcp._errors import MCPConnectionError, MCPProtocolError

TransportStreams = tuple[Any, Any]
"""The read and write streams an SDK transport yields."""
TransportFactory = Callable[[], AbstractAsyncContextManager[TransportStreams]]

_MAX_PAGES = 1000
_CLOSE_TIMEOUT = 15.0
"""Longest wait for a session to close (the SDK gives a stdio server 2 s, then kills it)."""
_TOOLS_CHANGED = "notifications/tools/list_changed"
_tasks: set[asyncio.Task[None]] = set()


class Link:
    """The connection to one server as its users see it: `call` and `list_tools`."""

    def __init__(self, label: str, factory: TransportFactory, *, connect_timeout: float,
                 on_change: Callable[[], None]) -> None:
        self.label = label
        self._factory = factory
        self._connect_timeout = connect_timeout
        self._on_change = on_change
        self._current: _Owner | None = None
        self._lock: tuple[object, anyio.Lock] | None = None
        self.generation = 0
        """Counts the connections opened so far (a tool listing belongs to one of them)."""

    @property
    def connected(self) -> bool:
        """Whether a connection is open and has not been lost."""
        owner = self._current
        return owner is not None and owner.usable and owner.loop is _loop_key()

    async def client(self) -> Client:
        """The open client, connecting (again) first when there is none or it was lost.

        Raises `MCPConnectionError` when the server cannot be started or reached.
        """
        owner = self._current
        if owner is not None and owner.usable and owner.loop is _loop_key():
            assert owner.client is not None
            return owner.client
        async with self._get_lock():
            owner = self._current
            if owner is not None and owner.usable and owner.loop is _loop_key():
                assert owner.client is not None
                return owner.client
            if owner is not None:
                await owner.close()
            owner = self._current = _Owner(self._factory, self._on_message, self._on_change)
            await owner.start(self.label, self._connect_timeout)
            self.generation += 1
            assert owner.client is not None
            return owner.client

    async def list_tools(self) -> tuple[list[MCPTool], int]:
        """Every tool the server lists (all pages) and the connection generation they
        belong to. Raises `MCPConnectionError` or `MCPProtocolError`."""
        client = await self.client()
        generation = self.generation
        tools: list[MCPTool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page: ListToolsResult = await self._request(
                client, functools.partial(client.list_tools, cursor=cursor), "tools/list")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools, generation

    async def call(self, name: str, arguments: dict[str, Any], *, shown: str | None = None
                   ) -> CallToolResult:
        """Call tool `name` (its MCP name; `shown` is the name the model knows).

        Raises `MCPConnectionError` when the server cannot be reached or the connection is
        lost during the call (then the next call reconnects), `MCPProtocolError` when the
        server answers with a protocol error.
        """
        client = await self.client()
        result: CallToolResult = await self._request(
            client, functools.partial(client.call_tool, name, arguments),
            f"the call of tool {shown or name!r}")
        return result

    async def _request(self, client: Client, send: Callable[[], Awaitable[Any]],
                       what: str) -> Any:
        owner = self._current
        try:
            return await send()
        except SDKError as error:
            if error.code != CONNECTION_CLOSED:
                raise MCPProtocolError(f"MCP server {self.label} refused {what}: "
                                       f"{error.message} (code {error.code})",
                                       server=self.label, code=error.code) from error
            cause: Exception = error
        except ValidationError as error:
            raise MCPProtocolError(f"MCP server {self.label} answered {what} with a result "
                                   f"that does not fit the protocol: {error}",
                                   server=self.label) from error
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream,
                OSError, httpx2.TransportError) as error:
            cause = error
        if owner is not None:
            owner.lose()
        raise MCPConnectionError(
            f"the connection to MCP server {self.label} was lost during {what}, which may "
            "or may not have run; the next call reconnects (restarting a stdio server)",
            server=self.label) from cause

    async def aclose(self) -> None:
        """Close the connection (if any); the next request opens a new one."""
        owner, self._current = self._current, None
        if owner is not None:
            await owner.close()

    def _get_lock(self) -> anyio.Lock:
        loop = _loop_key()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, anyio.Lock())
        return self._lock[1]

    async def _on_message(self, message: IncomingMessage) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == _TOOLS_CHANGED:
            self._on_change()


class _Owner:
    """The task holding one SDK client open, from the handshake until closed or lost."""

    def __init__(self, factory: TransportFactory,
                 on_message: MessageHandlerFnT,
                 on_change: Callable[[], None]) -> None:
        self._factory = factory
        self._on_message = on_message
        self._on_change = on_change
        self.loop = _loop_key()
        self.client: Client | None = None
        self.error: BaseException | None = None
        self._ready = anyio.Event()
        self._ended = anyio.Event()
        self._done = anyio.Event()

    @property
    def usable(self) -> bool:
        return self.client is not None and not self._ended.is_set()

    async def start(self, label: str, timeout: float) -> None:
        _spawn(self._own)
        with anyio.move_on_after(timeout) as waited:
            await self._ready.wait()
        if waited.cancelled_caught:
            await self.close()
            raise MCPConnectionError(f"MCP server {label} did not complete the handshake "
                                     f"within {timeout:g} seconds", server=label)
        if self.client is None:
            await self.close()
            error = _leaf(self.error) if self.error is not None else None
            reason = f"{type(error).__name__}: {error}" if error is not None else "it exited"
            raise MCPConnectionError(f"cannot connect to MCP server {label}: {reason}",
                                     server=label) from error

    def lose(self) -> None:
        """Mark the connection as gone: the owner closes it, the next request reconnects."""
        self._ended.set()

    async def close(self) -> None:
        """Tell the owner to leave the client and wait (shielded, bounded) until it has:
        a stdio server is stopped by then. A connection of another event loop is only
        told."""
        self._ended.set()
        if self.loop is _loop_key():
            with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._done.wait()

    async def _own(self) -> None:
        try:
            transport = _watched(self._factory(), self._ended)
            async with Client(transport, message_handler=self._on_message, cache=None,
                              client_info=Implementation(name="kimi-agent", version=__version__)
                              ) as client, anyio.create_task_group() as group:
                if _can_listen(client):
                    group.start_soon(self._listen, client)
                self.client = client
                self._ready.set()
                await self._ended.wait()
                group.cancel_scope.cancel()
        except Exception as error:
            self.error = error
        finally:
            self._ended.set()
            self._ready.set()
            self._done.set()

    async def _listen(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    self._on_change()
        except Exception:  # an ended stream is the connection's end, seen by the transport
            return


@asynccontextmanager
async def _watched(transport: AbstractAsyncContextManager[TransportStreams],
                   ended: anyio.Event) -> AsyncIterator[TransportStreams]:
    """`transport`, with `ended` set as soon as its read side ends (the server is gone)."""
    async with transport as (read, write):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump() -> None:
            try:
                async with send:
                    async for item in read:
                        await send.send(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass
            finally:
                ended.set()

        async with anyio.create_task_group() as group:
            group.start_soon(pump)
            try:
                yield receive, write
            finally:
                group.cancel_scope.cancel()


def _can_listen(client: Client) -> bool:
    tools = client.server_capabilities.tools
    return (client.protocol_version in MODERN_PROTOCOL_VERSIONS and tools is not None
            and bool(tools.list_changed))


def _spawn(function: Callable[[], Awaitable[None]]) -> None:
    """Start `function` as a task of the event loop outside every run's task group."""
    if not _on_asyncio():
        importlib.import_module("trio").lowlevel.spawn_system_task(function)
        return

    async def run() -> None:
        await function()

    task = asyncio.get_running_loop().create_task(run())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _loop_key() -> object:
    """The running event loop (a connection belongs to the loop that opened it)."""
    if not _on_asyncio():
        return cast(object, importlib.import_module("trio").lowlevel.current_trio_token())
    return asyncio.get_running_loop()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside nested exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
