"""The gateway application: shared state (`Gateway`) and `create_app`, which mounts one router per API surface.

Where a request goes: `api/<surface>.py` checks its wire format -> `api/flow.py`
asks `decision.py` which model serves it -> `upstream/` sends it to that
provider (relay or litellm, with failover) -> the answer goes back in the
client's format.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import __version__, litellm_loader
from .api import admin, chat, messages, ops, responses
from .api.flow import error_response
from .config import Config, ConfigError, load_config
from .decision import Decider
from .errors import GatewayError, MethodNotAllowed, NotFound, Unauthorized
from .metrics import Metrics
from .observe import Observer
from .pins import MemoryPinStore, PinStore
from .routers import Router, build_router
from .sessions import tenant_prefix
from .tracing import Tracing
from .upstream.failover import Forwarder

log = logging.getLogger("gateway.app")
SURFACES = (chat, messages, responses)
IMPORT_AFTER_START = 1.0  # seconds after startup to begin importing litellm in the background


def build_store(config: Config) -> PinStore:
    """The pin store the config names: in-process memory, or Redis shared by replicas."""
    routing = config.routing
    if routing.session_cache.type == "redis":
        from .redis_pins import RedisPinStore

        return RedisPinStore(routing.session_cache.url or "", routing.session_ttl_seconds,
                             routing.session_max_entries)
    return MemoryPinStore(routing.session_ttl_seconds, routing.session_max_entries)


class Gateway:
    """Everything one running gateway shares between requests."""

    def __init__(self, config: Config, router: Router | None = None, store: PinStore | None = None,
                 log_prompts: bool = False, hash_session_ids: bool = False, otel: bool = False) -> None:
        self.config = config
        self.tracing = Tracing(otel)
        self.metrics = Metrics()
        self.decider = Decider(config, router or build_router(config), store or build_store(config),
                               observe_router=self.metrics.router_latency.observe)
        self.metrics.watch_store(self.decider.store, self.decider.stats)
        self.forwarder = Forwarder(config, self.metrics)
        self.observer = Observer(self.metrics, hash_session_ids=hash_session_ids)
        self.response_items = responses.ItemMemory(config.routing.session_ttl_seconds)
        self.log_prompts = log_prompts  # a debugging aid: prompt text in the request log
        self.tenant_header = config.routing.session_cache.tenant_header
        self.retired: list[Forwarder] = []  # replaced by a reload; closed at shutdown, when nothing uses them

    def reloaded(self, config: Config, router: Router) -> Gateway:
        """This gateway serving `config`, with the same pin store, metrics, request log and remembered items.

        The caller swaps it in as `app.state.gateway`. A request keeps the
        gateway it started with, so requests already running finish on the old
        config while new ones get the new one.
        """
        new = copy.copy(self)
        new.config = config
        new.decider = Decider(config, router, self.decider.store, observe_router=self.metrics.router_latency.observe)
        new.decider.stats = self.decider.stats  # the metrics collector reads these counters
        same_upstreams = config.openai_relay == self.config.openai_relay  # keeps the provider connections warm
        new.forwarder = Forwarder(config, self.metrics, upstreams=self.forwarder.upstreams if same_upstreams else None)
        if not same_upstreams:
            self.retired.append(self.forwarder)
        new.tenant_header = config.routing.session_cache.tenant_header
        return new

    def client(self, request: Request) -> str | None:
        """The calling client's name when gateway keys are configured; Unauthorized otherwise."""
        if not self.config.auth_keys:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = request.headers.get("x-api-key", "")  # how Anthropic's SDK and Claude Code send a key
        name = self.config.auth_keys.get(token.strip())
        if name is None:
            raise Unauthorized("missing or unknown gateway key: send `Authorization: Bearer <key>` (or "
                               "`x-api-key: <key>`) with a key listed under auth.keys in the gateway's config")
        return name

    def tenant(self, request: Request, client: str | None) -> str:
        """The prefix that scopes pins (and anything else kept) to the caller's tenant."""
        header = request.headers.get(self.tenant_header, "") if self.tenant_header else None
        return tenant_prefix(client, header)


class InFlight:
    """ASGI middleware keeping the in-flight gauge (streams count until they end)."""

    def __init__(self, app: Any, gauge: Any) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()


class AnswerUnexpected:
    """ASGI middleware answering an exception no handler took with a 500 in the path's API shape.

    Starlette's own handler for `Exception` answers too, but then re-raises,
    so the server logs the same traceback a second time and the request twice.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            response = await on_unexpected(Request(scope), exc)
            try:
                await response(scope, receive, send)
            except RuntimeError:  # the answer had already started: the server closes the connection
                raise exc from None


def _answer_error(request: Request, error: GatewayError) -> Response:
    """`error` in the request's API shape, counted and logged like any other answer."""
    record = getattr(request.state, "record", None)
    if record is not None:  # refused on the way in: bad input, unknown model, no key, or our own fault
        record.status, record.error = error.status, error.code
        request.app.state.gateway.observer.finish(record)
    return error_response(getattr(request.state, "surface", None), error)


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _answer_error(request, exc)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return _answer_error(request, GatewayError("internal gateway error; see the gateway log for details",
                                               code="internal_error"))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 (and any other HTTP error) in the shape of the API the path belongs to."""
    status = getattr(exc, "status_code", 404)
    if status == 404:
        error: GatewayError = NotFound(f"{request.method} {request.url.path} is not an endpoint of this gateway "
                                       "(see /docs or README, API)")
    elif status == 405:
        error = MethodNotAllowed(f"{request.url.path} does not take {request.method}; see /docs for its methods")
    else:
        error = GatewayError(str(getattr(exc, "detail", "")) or f"HTTP {status}", code=str(status))
        error.status = status
    surface = messages.SURFACE if request.url.path.startswith(("/v1/messages", "/routing/v1/messages")) else None
    return error_response(surface, error, dict(getattr(exc, "headers", None) or {}))


def _refused_websocket_noise(record: logging.LogRecord) -> bool:
    """Drop the ERROR uvicorn's websockets-sansio protocol logs after a refused upgrade.

    Codex tries a WebSocket on every start and gets the intended 426, but that
    protocol implementation never marks a denial response as a finished
    handshake and logs an error for it (a known uvicorn bug).
    """
    return record.getMessage() != "ASGI callable returned without completing handshake."


def create_app(config: Config, *, router: Router | None = None, store: PinStore | None = None,
               log_prompts: bool = False, hash_session_ids: bool = False, otel: bool = False) -> FastAPI:
    """The ASGI application serving `config`."""
    gw = Gateway(config, router=router, store=store, log_prompts=log_prompts, hash_session_ids=hash_session_ids,
                 otel=otel)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("uvicorn.error").addFilter(_refused_websocket_noise)  # after uvicorn set up its logging
        gc.freeze()  # what start-up built (config, router, its encoder) lives for good: kept out of every collection
        if litellm_loader.needed_by(config):
            # Seconds of CPU in a thread, begun once the server is up and has answered its first probes
            # (the thread holds the GIL at times); a translated request before then starts it itself.
            asyncio.get_running_loop().call_later(IMPORT_AFTER_START, litellm_loader.start_import)
        yield
        current = app.state.gateway  # the one serving now, after any reloads
        for forwarder in (current.forwarder, *current.retired):
            await forwarder.close()
        await current.decider.store.close()

    app = FastAPI(
        title="pinning-gateway", version=__version__, lifespan=lifespan,
        description="An OpenAI-, Anthropic- and Responses-compatible LLM gateway that routes each request by "
                    "intent and pins agent sessions to one model.",
        middleware=[Middleware(InFlight, gauge=gw.metrics.in_flight), Middleware(AnswerUnexpected)],
        exception_handlers={GatewayError: on_gateway_error, HTTPException: on_http_error},
        # The gateway's own spans (`--otel`, tracing.py) cover every route, plain ones included;
        # FastAPI's would duplicate them and cost a provider lookup on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    # The hot endpoints first, at the top level: matched before anything else, no nested router.
    app.router.routes[:0] = [route for surface in SURFACES for route in surface.ROUTES]
    for module in (responses, admin, ops):  # the documented FastAPI routes
        app.include_router(module.router)
    app.state.gateway = gw
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the hot endpoints, which are plain routes documented by each surface's DOCS."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    entries = [entry for surface in SURFACES for entry in surface.DOCS]
    models = {m for _, _, req, resp, _ in entries for m in (req, resp) if m is not None}
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
    for path, summary, request_model, response_model, description in entries:
        ok: dict[str, Any] = {"description": "the answer, in the same API's format"}
        if response_model is not None:
            ok["content"] = {"application/json": {"schema": refs[(response_model, "validation")]}}
        schema.setdefault("paths", {})[path] = {"post": {
            "summary": summary, "description": description, "tags": [path.split("/")[-1]],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": refs[(request_model, "validation")]}}},
            "responses": {"200": ok, "400": {"description": "bad input, with a message saying what to fix"}},
        }}
    app.openapi_schema = schema
    return schema


async def next_config(app: FastAPI) -> Config:
    """The config file `app` was started with, read again and checked; ConfigError listing its problems."""
    config = await asyncio.to_thread(load_config, app.state.gateway.config.source)
    check = getattr(app.state, "reload_check", None)  # e.g. no gateway keys while listening beyond loopback
    problem = check(config) if check is not None else None
    if problem:
        raise ConfigError([f"{config.source}: {problem}"])
    return config


async def reload(app: FastAPI) -> Gateway:
    """Re-read the config file `app` was started with and serve it; ConfigError (nothing changed) if it cannot.

    The file is read and the router built off the event loop, so requests keep
    being served meanwhile. The pin store is kept: pins to models still
    configured stay, pins to removed models are dropped when next used.
    """
    gw: Gateway = app.state.gateway
    config = await next_config(app)
    embedded = config.routing.model is None and gw.config.routing.model is None
    try:  # the embedded router depends on the routes alone: unchanged routes need no new one
        router = (gw.decider.router if embedded and config.routes == gw.config.routes
                  else await asyncio.to_thread(build_router, config))
    except Exception as exc:
        raise ConfigError([f"{config.source}: the router cannot load ({exc})"]) from None
    old = gw.config.routing
    if (config.routing.session_cache, config.routing.session_ttl_seconds, config.routing.session_max_entries) != (
            old.session_cache, old.session_ttl_seconds, old.session_max_entries):
        log.warning("reload: routing.session_cache, session_ttl_seconds and session_max_entries apply at the next "
                    "restart; the pins in the current store are kept")
    if config.server != gw.config.server:
        log.warning("reload: the server section (limits, timeouts, drain) applies at the next restart")
    app.state.gateway = gw.reloaded(config, router)
    return app.state.gateway


async def reload_and_log(app: FastAPI, check_only: bool = False) -> list[str]:
    """`reload` (or only `next_config`), logged: the problems that refused the new config, or [] when it serves."""
    try:
        if check_only:
            await next_config(app)
            return []
        gw = await reload(app)
    except ConfigError as exc:
        for line in exc.problems:
            log.error("reload refused: %s", line)
        log.error("reload refused: the previous config keeps serving")
        return exc.problems
    log.info("reloaded %s: %d model(s), %d route(s)", gw.config.source, len(gw.config.providers), len(gw.config.routes))
    return []


def app_from_env() -> FastAPI:
    """App factory for worker processes: `gateway up --workers N` passes its settings in the environment."""
    from .config import load_config
    from .logs import configure

    from .server import exposure_problem

    configure(os.environ.get("GATEWAY_LOG_LEVEL", "info"), os.environ.get("GATEWAY_LOG_FORMAT", "text"))
    app = create_app(load_config(os.environ["GATEWAY_CONFIG"]),
                     log_prompts=os.environ.get("GATEWAY_LOG_PROMPTS") == "1",
                     hash_session_ids=os.environ.get("GATEWAY_HASH_SESSION_IDS") == "1",
                     otel=os.environ.get("GATEWAY_OTEL") == "1")
    # A reload asked of one worker (POST /routing/v1/reload) is checked here, then done by the supervisor for all.
    app.state.supervisor_pid = int(os.environ.get("GATEWAY_SUPERVISOR_PID", "0")) or None
    host, allowed = os.environ.get("GATEWAY_HOST", "127.0.0.1"), os.environ.get("GATEWAY_ALLOW_UNAUTHENTICATED") == "1"
    app.state.reload_check = lambda config: exposure_problem(host, config, allowed)
    return app
