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
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import anyio

from kimi_agent.errors import ConfigurationError
from kimi_agent.models._profiles import KIMI_K2_5, KIMI_K2_6, ModelProfile, get_profile

from .faults import Fault, FaultBook, FaultKind, Latency
from .records import RecordedRequest
from .render import PromptCache
from .replies import IdMaker, IdStyle, Reply, Responder, SimRequest, call_responder, echo_responder
from .script import NoScriptMatch, Script, load_script

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
        self.requests: list[RecordedRequest] = []
        """Every request received, in order, refused ones included."""
        self.errors: list[Exception] = []
        """Exceptions of the responder and unmatched script requests (answered with a 500)."""
        self.base_url: str | None = None
        """`http://host:port/v1` while `serve()` runs."""
        self._app: Any = None

    # ------------------------------------------------------------------ answering

    @property
    def app(self) -> Any:
        """The Starlette ASGI app (built on first use)."""
        if self._app is None:
            from .app import build_app

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
    ) -> Fault:
        """Make requests to `model` (None: to any model) fail; returns the `Fault`.

        Give a `status` (429 → rate limit, 401, 402, 5xx → server error, any other 4xx → an
        `invalid_request_error`) or a `kind` ("rate_limit", "overloaded"/"busy", "quota",
        "server_error", "unauthorized", "payment_required", "error", "slow",
        "drop_mid_stream", "cut_before_done"). Schedule: the next `times` requests (1 by
        default), a `rate` in 0..1 (drawn from the seeded RNG; with `times`, at most that
        many), or `always`. `retry_after` adds a `Retry-After` header, `delay` is the wait of
        a "slow" fault, `after_chunks` the SSE events sent before a drop or a cut.
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
        )
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Forget requests, errors, faults, the prompt cache and the uses of script turns."""
        self.requests.clear()
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
        from .server import serve_app

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
        from .server import serve_in_thread

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

    from .server import run_forever

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(lambda: run_forever(sim.app, host=host, port=port, on_ready=ready))


def _arg(args: object, name: str, default: Any) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value
