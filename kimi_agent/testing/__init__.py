"""A strict, scriptable simulator of the Kimi gateway, for tests and offline development.

```python
from kimi_agent.testing import GatewaySimulator, Reply

def responder(request):
    return Reply(reasoning="查订单", tool_calls=[("get_order", {"order_id": "A1024"})])

sim = GatewaySimulator(responder=responder)
sim.inject("kimi-k2-6", status=503, times=3)   # faults per model: count, rate or always
sim.inject(kind="spend_cap")                    # the gateway's own errors, with type + code
async with sim.serve() as base_url:             # a real loopback server, e.g. http://127.0.0.1:PORT/v1
    ...                                         # point a client at base_url with sim.api_key
sim.requests                                    # what the client sent, refused requests included
```

In process, without a socket: `httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app),
base_url="http://sim/v1")`. Tool schemas are judged by an independent oracle of Moonshot's
validator (MoonshotAI/walle, `strict` level), not by the client's dialect code; see
docs/wire/simulator.md for what is modelled and where each rule comes from. Needs the
optional extra `kimi-agent[sim]` (starlette, uvicorn, pyyaml). The core package never imports
this one.
"""

from __future__ import annotations

from ._account import Account
from ._app import DroppedConnection
from ._faults import Fault, FaultKind, Latency
from ._records import RecordedRequest
from ._replies import (
    IdStyle,
    Reply,
    Responder,
    SimRequest,
    ToolCallSpec,
    ToolResult,
    echo_responder,
)
from ._script import NoScriptMatch, Script, ScriptError, ScriptTurn, load_script
from ._simulator import GatewaySimulator, cli_simulate
from ._strict import Refusal

__all__ = [
    "Account",
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
