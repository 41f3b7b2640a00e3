"""A strict, scriptable simulator of the Kimi gateway, for tests and offline development.

```python
from kimi_agent.testing import GatewaySimulator, Reply

def responder(request):
    return Reply(reasoning="查订单", tool_calls=[("get_order", {"order_id": "A1024"})])

sim = GatewaySimulator(responder=responder)
sim.inject("kimi-k2-6", status=503, times=3)   # faults per model: count, rate or always
async with sim.serve() as base_url:             # a real loopback server, e.g. http://127.0.0.1:PORT/v1
    ...                                         # point a client at base_url with sim.api_key
sim.requests                                    # what the client sent, refused requests included
```

In process, without a socket: `httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app),
base_url="http://sim/v1")`. Needs the optional extra `kimi-agent[sim]` (starlette, uvicorn,
pyyaml). The core package never imports this one.
"""

from __future__ import annotations

from .app import DroppedConnection
from .faults import Fault, FaultKind, Latency
from .records import RecordedRequest
from .replies import (
    IdStyle,
    Reply,
    Responder,
    SimRequest,
    ToolCallSpec,
    ToolResult,
    echo_responder,
)
from .script import NoScriptMatch, Script, ScriptError, ScriptTurn, load_script
from .simulator import GatewaySimulator, cli_simulate
from .strict import Refusal

__all__ = [
    "DroppedConnection",
    "Fault",
    "FaultKind",
    "GatewaySimulator",
    "IdStyle",
    "Latency",
    "NoScriptMatch",
    "RecordedRequest",
    "Refusal",
    "Reply",
    "Responder",
    "Script",
    "ScriptError",
    "ScriptTurn",
    "SimRequest",
    "ToolCallSpec",
    "ToolResult",
    "cli_simulate",
    "echo_responder",
    "load_script",
]
