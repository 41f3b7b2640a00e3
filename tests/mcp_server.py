"""A real MCP server for the tests, on the SDK's `MCPServer` (FastMCP's successor).

    python -m tests.mcp_server stdio
    python -m tests.mcp_server http PORT       streamable HTTP on 127.0.0.1:PORT/mcp
    python -m tests.mcp_server sse PORT        the older SSE transport on 127.0.0.1:PORT/sse

Tools with Chinese descriptions, a nested pydantic argument (its schema has `$defs`, `$ref`
and `title`), a tool that raises, a slow tool that records when it ran (`spans`), a dotted
name, a tool whose schema no dialect can take, content that is not text, and tools that kill
the server or change its tool list.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.utilities.types import Image
from pydantic import BaseModel, Field

server = MCPServer("测试服务器")
_spans: list[dict[str, object]] = []

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Address(BaseModel):
    """收货地址。"""

    city: str = Field(description="城市，例如 上海")
    street: str = Field(description="街道和门牌号")


class Order(BaseModel):
    """一张订单。"""

    item: str = Field(description="商品名称")
    quantity: int = Field(default=1, ge=1, description="数量")
    address: Address


@server.tool(description="查询城市的天气。会花一点时间，并记录开始和结束的时刻。")
async def weather(city: str, seconds: float = 0.3) -> str:
    started = time.monotonic()
    await anyio.sleep(seconds)
    _spans.append({"key": city, "start": started, "end": time.monotonic()})
    return f"{city}：晴，25°C"


@server.tool(description="返回 weather 工具每次运行的开始和结束时刻（JSON）。")
def spans() -> str:
    return json.dumps(_spans, ensure_ascii=False)


@server.tool(description="下单：把商品寄到指定地址。")
def place_order(order: Order) -> dict[str, object]:
    return {"订单号": "A1024", "商品": order.item, "数量": order.quantity,
            "寄往": f"{order.address.city}{order.address.street}"}


@server.tool(description="查询库存，但库存系统总是出故障。")
def check_stock(item: str) -> str:
    raise ValueError(f"库存系统故障：无法查询{item}")


@server.tool(name="geo.lookup", description="查询城市所在的省份。")
def geo_lookup(city: str) -> str:
    return {"广州": "广东省", "杭州": "浙江省"}.get(city, "未知省份")


@server.tool(description="一张图片和一段说明。", structured_output=False)
def snapshot() -> list[object]:
    return ["这是监控截图", Image(data=PNG, format="png")]


@server.tool(description="返回服务器进程号。")
def pid() -> int:
    return os.getpid()


@server.tool(description="让服务器崩溃（调用中途退出进程）。")
def crash() -> str:
    os._exit(3)


@server.tool(description="增加一个新工具 greet 并通知客户端。")
async def add_greet(ctx: Context) -> str:
    if server._tool_manager.get_tool("greet") is None:
        server.add_tool(_greet, name="greet", description="用中文问好。")
    await ctx.notify_tools_changed()
    await ctx.session.send_tool_list_changed()
    return "已增加 greet"


def _greet(name: str) -> str:
    return f"你好，{name}！"


@server.tool(description="参数模式无法转换的工具。")
def broken(value: str) -> str:
    return value


_broken = server._tool_manager.get_tool("broken")
assert _broken is not None
_broken.parameters = {"type": "object",
                      "properties": {"value": {"$ref": "https://example.com/value.json"}}}


def main(argv: list[str]) -> None:
    transport = argv[0] if argv else "stdio"
    if transport == "stdio":
        server.run()
    elif transport == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    elif transport == "sse":
        server.run("sse", host="127.0.0.1", port=int(argv[1]))
    else:
        raise SystemExit(f"unknown transport {transport!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
