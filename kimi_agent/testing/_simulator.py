"""`GatewaySimulator`: a strict, scriptable stand-in for the Kimi gateway (docs/wire/simulator.md).

It holds the state one simulated gateway needs — key, model profiles, script or responder,
injected faults, latency, the prompt cache and the record of requests — and exposes it as an
ASGI app (`sim.app`, for in-process tests through `httpx.ASGITransport`) and as a real
loopback server (`async with sim.serve() as base_url`). `cli_simulate` is the body of
`kimi-agent simulate`.

Answers come from the script when one is given (first matching turn), else from the
responder, else from `echo_responder`. With both a script and a responder, the responder
answers the requests no turn matches; with a script alone such a request gets a 500
`simulator_error` that says no turn matched (and lands in `sim.errors`).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio

from kimi_agent.errors import ConfigurationError
from kimi_agent.models._profiles import KIMI_K2_5, KIMI_K2_6, ModelProfile, get_profile

from ._account import Account
from ._faults import Fault, FaultBook, FaultKind, Latency
from ._records import RecordedRequest
from ._render import PromptCache
from ._replies import IdMaker, IdStyle, Reply, Responder, SimRequest, call_responder, echo_responder
from ._script import NoScriptMatch, Script, load_script

__all__ = ["GatewaySimulator", "cli_simulate"]

ScriptSource = Script | str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any]


class GatewaySimulator:
    """A simulated gateway. See the package docstring for an example.

    `script`: a `Script`, a path to a JSON/YAML script, or its parsed data.
    `responder`: `(SimRequest) -> Reply | str`, sync or async.
    `models`: the models served (profiles or names of built-in ones); default both built-ins.
    `latency`: time to first token and tokens per second (none by default).
    `seed`: seeds the RNG of rate-based faults, for reproducible runs.
    `id_style`: the style of tool-call ids ("mixed" rotates Kimi's styles between replies).
    `concurrency_limit`: the account's cap on requests in flight; over it a request gets the
    gateway's immediate 429 `concurrency_limit` (None: no cap). `max_in_flight` records the
    most requests seen in flight at once, capped or not.
    `max_requests`: how many `RecordedRequest`s (and responder errors) are kept, newest last;
    older ones are dropped so a long soak keeps bounded memory.
    `moonshot_headers`: also send Moonshot's `Msh-Request-Id` / `X-Msh-Trace-Id` beside the
    gateway's `X-Request-Id` (the gateway passes Moonshot's answers through).
    `connections` counts the client connections requests arrived on (a client that reuses
    its connections shows few; one that opens a socket per request, one per request).
    `account`: the spend bucket and quotas reported in the `X-RateLimit-*` / `X-Quota-*`
    headers of every answer.

    Raises:
        ConfigurationError: an empty key, no model, an unknown model name, a
            `concurrency_limit` or `max_requests` below 1.
        ScriptError: a script that does not parse.
    """

    def __init__(
        self,
        script: ScriptSource | None = None,
        responder: Responder | None = None,
        api_key: str = "sim-key",
        models: Sequence[ModelProfile | str] | None = None,
        *,
        latency: Latency | None = None,
        seed: int | None = None,
        id_style: IdStyle = "mixed",
        concurrency_limit: int | None = None,
        max_requests: int = 5000,
        moonshot_headers: bool = True,
        account: Account | None = None,
    ) -> None:
        if not api_key:
            raise ConfigurationError("the simulator needs a non-empty api_key")
        self.api_key = api_key
        chosen = models if models is not None else (KIMI_K2_6, KIMI_K2_5)
        self.profiles: dict[str, ModelProfile] = {}
        for model in chosen:
            profile = model if isinstance(model, ModelProfile) else get_profile(model)
            self.profiles[profile.name] = profile
        if not self.profiles:
            raise ConfigurationError("the simulator needs at least one model")
        self.script: Script | None = load_script(script) if script is not None else None
        self.responder: Responder | None = responder
        self.latency = latency or Latency()
        self.faults = FaultBook(seed)
        self.cache = PromptCache()
        self.ids = IdMaker(id_style)
        if concurrency_limit is not None and concurrency_limit < 1:
            raise ConfigurationError("concurrency_limit must be at least 1 (or None)")
        if max_requests < 1:
            raise ConfigurationError("max_requests must be at least 1")
        self.concurrency_limit = concurrency_limit
        self.moonshot_headers = moonshot_headers
        self.account = account or Account()
        self.requests: deque[RecordedRequest] = deque(maxlen=max_requests)
        """The last `max_requests` requests received, in order, refused ones included."""
        self.errors: deque[Exception] = deque(maxlen=max_requests)
        """Exceptions of the responder and unmatched script requests (answered with a 500)."""
        self.received = 0
        """How many requests arrived in all (`RecordedRequest.index` counts from 0)."""
        self.in_flight = 0
        """Requests being answered right now (a stream counts until its last byte)."""
        self.max_in_flight = 0
        """The most requests that were in flight at the same time."""
        self.connections = 0
        """Client connections seen (a new client address and port counts as a new one)."""
        self._clients: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.base_url: str | None = None
        """`http://host:port/v1` while `serve()` runs."""
        self._app: Any = None

    # ------------------------------------------------------------------ answering

    @property
    def app(self) -> Any:
        """The Starlette ASGI app (built on first use)."""
        if self._app is None:
            from ._app import build_app

            self._app = build_app(self)
        return self._app

    async def answer(self, request: SimRequest) -> Reply:
        """The reply to an accepted request: script turn, else responder, else echo."""
        if self.script is not None:
            reply = self.script.answer(request)
            if reply is not None:
                return reply
            if self.responder is None:
                raise NoScriptMatch(self.script.no_match_message(request))
        return await call_responder(self.responder or echo_responder, request)

    def note_client(self, client: Any) -> None:
        """Count a request's connection: new when its (host, port) was not seen recently."""
        if not isinstance(client, list | tuple) or len(client) != 2:
            return
        address = (str(client[0]), int(client[1]))
        if address in self._clients:
            self._clients.move_to_end(address)
            return
        self.connections += 1
        self._clients[address] = None
        if len(self._clients) > 4096:
            self._clients.popitem(last=False)

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        model: str | None = None,
        *,
        status: int | None = None,
        kind: FaultKind | None = None,
        times: int | None = None,
        rate: float | None = None,
        always: bool = False,
        retry_after: float | None = None,
        delay: float | None = None,
        after_chunks: int | None = None,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
        reset_at: datetime | None = None,
        window: str = "5h",
        done: bool = False,
    ) -> Fault:
        """Make requests to `model` (None: to any model) fail; returns the `Fault`.

        Give a `status` (429 → rate limit, 401, 402, 403 → permission denied, 5xx → server
        error, any other 4xx → an `invalid_request_error`) or a `kind` (see `_faults.py`:
        the gateway's "spend_cap", "concurrency_limit", "insufficient_balance",
        "quota_exceeded", "permission_denied", "model_not_in_group", "model_not_found",
        "unsupported_model"; Moonshot's "rate_limit", "overloaded"/"busy", "quota",
        "server_error", "unauthorized", "payment_required", "error"; in the answer
        "stream_error", "no_choices", "think_only", "duplicate_ids", "empty_ids", "slow",
        "drop_mid_stream", "cut_before_done"). Schedule: the next `times` requests (1 by
        default), a `rate` in 0..1 (drawn from the seeded RNG; with `times`, at most that
        many), or `always`. `retry_after` adds a `Retry-After` header, `delay` is the wait of
        a "slow" fault, `after_chunks` the SSE events sent before a drop, a cut or an error
        frame; `code` overrides the envelope's `code`; `reset_at` (aware UTC) and `window`
        ("5h", "24h", "7d") shape a spend cap; `done` sends `data: [DONE]` after an error
        frame.

        Raises:
            ConfigurationError: an unknown model or kind, or options that do not fit.
        """
        if model is not None and model not in self.profiles:
            known = ", ".join(self.profiles)
            raise ConfigurationError(f"inject(): unknown model {model!r}; known: {known}")
        fault = Fault.build(
            model,
            status=status,
            kind=kind,
            times=times,
            rate=rate,
            always=always,
            retry_after=retry_after,
            delay=delay,
            after_chunks=after_chunks,
            message=message,
            error_type=error_type,
            code=code,
            reset_at=reset_at,
            window=window,
            done=done,
        )
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Forget requests, errors, faults, spend, the prompt cache and script turn uses."""
        self.requests.clear()
        self.account.reset()
        self.max_in_flight = self.in_flight
        self.connections = 0
        self._clients.clear()
        self.errors.clear()
        self.faults.clear()
        self.cache.clear()
        if self.script is not None:
            for turn in self.script.turns:
                turn.used = 0

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise LookupError("the simulator has received no request yet")
        return self.requests[-1]

    # ------------------------------------------------------------------ serving

    @contextlib.asynccontextmanager
    async def serve(self, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Run a real HTTP server (uvicorn, asyncio) on loopback while the block runs.

        Yields the base URL, e.g. `http://127.0.0.1:54321/v1`; port 0 picks a free port.
        """
        from ._server import serve_app

        async with serve_app(self.app, host=host, port=port) as root:
            self.base_url = f"{root}/v1"
            try:
                yield self.base_url
            finally:
                self.base_url = None

    @contextlib.contextmanager
    def serve_in_thread(self, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Like `serve()`, from a background thread, for synchronous code. Yields the base URL.

        The responder then runs in that thread.
        """
        from ._server import serve_in_thread

        with serve_in_thread(self.app, host=host, port=port) as root:
            self.base_url = f"{root}/v1"
            try:
                yield self.base_url
            finally:
                self.base_url = None


def cli_simulate(
    args: object | None = None,
    *,
    port: int = 8787,
    host: str = "127.0.0.1",
    script: str | os.PathLike[str] | None = None,
    api_key: str = "sim-key",
) -> None:
    """Run the simulator until Ctrl-C, printing the base URL and the key (`kimi-agent simulate`).

    `args` may be an argparse namespace with `port`, `host`, `script`, `api_key` attributes;
    those present override the keyword arguments. A script that does not parse raises
    `ScriptError` before anything is served.
    """
    if args is not None:
        port = int(_arg(args, "port", port))
        host = str(_arg(args, "host", host))
        script = _arg(args, "script", script)
        api_key = str(_arg(args, "api_key", api_key))
    sim = GatewaySimulator(script=script, api_key=api_key)

    def ready(root: str) -> None:
        base_url = f"{root}/v1"
        sim.base_url = base_url
        print("kimi-agent gateway simulator", flush=True)
        print(f"  base URL: {base_url}", flush=True)
        print(f"  API key:  {api_key}", flush=True)
        print(f"  models:   {', '.join(sim.profiles)}", flush=True)
        print(f"  script:   {script or '(none: echoes the last user message)'}", flush=True)
        print(f"  export BYTESPIKE_BASE_URL={base_url} BYTESPIKE_API_KEY={api_key}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)

    from ._server import run_forever

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(lambda: run_forever(sim.app, host=host, port=port, on_ready=ready))


def _arg(args: object, name: str, default: Any) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value
