"""The HTTP surface: parse, ask the decision, present it (and forward, on /v1)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import validation
from .config import Config
from .conversation import user_turns
from .decision import Decider, Decision
from .errors import GatewayError, NotFound, Unauthorized, Unavailable
from .forwarding import Forwarder
from .metrics import Metrics
from .observe import Observer, RequestRecord
from .pins import MemoryPinStore, PinStore
from .routers import Router, build_router
from .sse import EventStream
from .tracing import Tracing, annotate

log = logging.getLogger("gateway.app")
CHAT = "/v1/chat/completions"
ROUTING = "/routing/v1/chat/completions"


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
        self.log_prompts = log_prompts  # a debugging aid: prompt text in the request log
        self.tenant_header = config.routing.session_cache.tenant_header

    def client(self, request: Request) -> str | None:
        """The calling client's name when gateway keys are configured; Unauthorized otherwise."""
        if not self.config.auth_keys:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        name = self.config.auth_keys.get(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            raise Unauthorized("missing or unknown gateway key: send `Authorization: Bearer <key>` with a key "
                               "listed under auth.keys in the gateway's config")
        return name

    def session_key(self, request: Request, client: str | None, session_id: str | None) -> str | None:
        """The pin key: the session id inside its tenant (client key and/or tenant header).

        Parts are length-prefixed, so no choice of tenant or session id can
        collide with another tenant's key.
        """
        if session_id is None:
            return None
        parts = []
        if client is not None:
            parts.append(client)
        if self.tenant_header:
            parts.append(request.headers.get(self.tenant_header, ""))
        return "".join(f"{len(p)}:{p}/" for p in parts) + session_id


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


def decision_headers(decision: Decision, trace_id: str) -> dict[str, str]:
    headers = {
        "X-Router-Model": decision.model,
        "X-Router-Route": decision.route or "none",
        "X-Router-Pinned": "true" if decision.pinned else "false",
        "X-Trace-Id": trace_id,
    }
    if decision.session_id is not None:
        headers["X-Session-Id"] = decision.session_id
    return headers


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**(headers or {}), **error.headers})


def create_app(config: Config, *, router: Router | None = None, store: PinStore | None = None,
               log_prompts: bool = False, hash_session_ids: bool = False, otel: bool = False) -> Starlette:
    """The ASGI application serving `config`.

    Plain Starlette routes: FastAPI's dependency and validation layers cost
    about 45 us per request here (README, Performance) and the gateway uses
    neither; bodies are checked by `validation.py`.
    """
    gw = Gateway(config, router=router, store=store, log_prompts=log_prompts, hash_session_ids=hash_session_ids,
                 otel=otel)
    tracing = gw.tracing

    async def decide(request: Request, record: RequestRecord) -> tuple[dict[str, Any], Decision, str | None]:
        request.state.record = record  # the error handler finishes it if anything below raises
        client = gw.client(request)
        record.trace_id = validation.trace_id(request)
        record.session_id = sid = validation.session_id(request)
        body = await validation.read_body(request, config.max_body_bytes)
        if gw.log_prompts:
            record.prompt = (user_turns(body["messages"], 1) or [""])[0][:500]
        key = gw.session_key(request, client, sid)
        with tracing.span("gateway.decide", session_id=sid) as span:
            record.decision = decision = await gw.decider.decide(body, key, sid)
            annotate(span, model=decision.model, route=decision.route, pinned=decision.pinned,
                     outcome=decision.outcome)
        return body, decision, key

    def stamp_overhead(record: RequestRecord, headers: dict[str, str]) -> None:
        headers["X-Gateway-Overhead-Ms"] = f"{record.overhead() * 1000:.3f}"

    Handler = Callable[[Request], Awaitable[Response]]

    def traced(endpoint: str, handler: Handler) -> Handler:
        """`handler` inside the request's tracing span (free when tracing is off)."""

        async def run(request: Request) -> Response:
            with tracing.request(endpoint, request.headers):
                return await handler(request)

        return run

    async def routing_decision(request: Request) -> Response:
        record = RequestRecord(ROUTING)
        body, decision, _ = await decide(request, record)
        payload: dict[str, Any] = {"model": decision.model, "route": decision.route, "trace_id": record.trace_id}
        if decision.session_id is not None:
            payload["session_id"] = decision.session_id
        payload["pinned"] = decision.pinned
        headers = decision_headers(decision, record.trace_id)  # type: ignore[arg-type]
        stamp_overhead(record, headers)
        gw.observer.finish(record)
        return JSONResponse(payload, headers=headers)

    async def chat_completions(request: Request) -> Response:
        record = RequestRecord(CHAT)
        body, decision, key = await decide(request, record)
        headers = decision_headers(decision, record.trace_id)  # type: ignore[arg-type]
        try:
            with tracing.span("gateway.upstream", provider=decision.model) as span:
                traceparent = tracing.traceparent(request.headers.get("traceparent"))
                answer = await gw.forwarder.send(decision.provider, body,
                                                 {"traceparent": traceparent} if traceparent else None)
                annotate(span, answered_by=answer.provider.model, attempts=answer.attempts,
                         stream=answer.stream is not None)
        except GatewayError as exc:
            record.status, record.error = exc.status, exc.code
            record.upstream_seconds = getattr(exc, "upstream_seconds", 0.0)
            stamp_overhead(record, headers)
            gw.observer.finish(record)
            return error_response(exc, headers)
        record.served_by, record.upstream_seconds, record.usage = (
            answer.provider.model, answer.upstream_seconds, answer.usage)
        if answer.provider is not decision.provider:
            # Failed over: the session follows the model the agent actually heard from.
            if key is not None:
                await gw.decider.repin(key, decision, answer.provider)
            headers.update({"X-Router-Model": answer.provider.model, "X-Router-Pinned": "false",
                            "X-Router-Failover": f"{decision.model} -> {answer.provider.model}"})
        stamp_overhead(record, headers)
        if answer.stream is None:
            gw.observer.finish(record)
            return Response(answer.body, media_type="application/json", headers=headers)

        def stream_closed(ending: str | None) -> None:
            record.error = ending
            gw.observer.finish(record)

        return EventStream(answer.stream, headers, on_close=stream_closed)

    def admin_key(request: Request) -> tuple[str, str]:
        session_id = request.path_params["session_id"]
        client = gw.client(request)
        validation.check_session_id(session_id)
        return session_id, gw.session_key(request, client, session_id)  # type: ignore[return-value]

    async def show_session(request: Request) -> Response:
        session_id, key = admin_key(request)
        try:
            found = await gw.decider.store.peek(key)
        except Exception as exc:
            raise Unavailable(f"the pin store is unreachable ({type(exc).__name__}); try again when it is back") from None
        if found is None:
            raise NotFound(f"no live pin for session {session_id!r} (never pinned, expired or evicted)")
        pin, left = found
        return JSONResponse({"session_id": session_id, "model": pin.model, "route": pin.route,
                             "created": pin.created, "last_used": pin.last_used,
                             "seconds_left": round(left, 3)})

    async def unpin_session(request: Request) -> Response:
        session_id, key = admin_key(request)
        try:
            deleted = await gw.decider.unpin(key)
        except Exception as exc:
            raise Unavailable(f"the pin store is unreachable ({type(exc).__name__}); try again when it is back") from None
        if not deleted:
            raise NotFound(f"no live pin for session {session_id!r}; nothing to unpin")
        return JSONResponse({"session_id": session_id, "deleted": True})

    async def list_models(request: Request) -> Response:
        gw.client(request)
        created = int(time.time())
        data = [{"id": p.model, "object": "model", "created": created, "owned_by": p.provider}
                for p in config.providers]
        data += [{"id": alias, "object": "model", "created": created,
                  "owned_by": config.find(alias).provider} for alias in config.aliases]  # type: ignore[union-attr]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "router": gw.decider.router.name, "pid": os.getpid(),
                             "pins": await _safe_size(gw.decider.store), "tasks": len(asyncio.all_tasks())})

    async def metrics(request: Request) -> Response:
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def on_gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        record = getattr(request.state, "record", None)
        if record is not None:  # refused before a decision: bad input, unknown model, no key
            record.status, record.error = exc.status, exc.code
            gw.observer.finish(record)
        return error_response(exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": {"message": "internal gateway error; see the gateway log for details",
                                       "type": "server_error", "code": "internal_error"}}, status_code=500)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return JSONResponse({"error": {"message": f"{request.method} {request.url.path} is not an endpoint of "
                                       "this gateway (see README, API)", "type": "invalid_request_error",
                                       "code": "not_found" if status == 404 else "method_not_allowed"}},
                            status_code=status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gw.forwarder.close()
        await gw.decider.store.close()

    app = Starlette(
        routes=[
            Route(CHAT, traced(CHAT, chat_completions), methods=["POST"]),
            Route(ROUTING, traced(ROUTING, routing_decision), methods=["POST"]),
            Route("/routing/v1/sessions/{session_id:path}", show_session, methods=["GET"]),
            Route("/routing/v1/sessions/{session_id:path}", unpin_session, methods=["DELETE"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=[Middleware(InFlight, gauge=gw.metrics.in_flight)],
        exception_handlers={GatewayError: on_gateway_error, HTTPException: on_not_found, Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.gateway = gw
    return app


def app_from_env() -> Starlette:
    """App factory for worker processes: `gateway up --workers N` passes its settings in the environment."""
    from .config import load_config
    from .logs import configure

    configure(os.environ.get("GATEWAY_LOG_LEVEL", "info"), os.environ.get("GATEWAY_LOG_FORMAT", "text"))
    return create_app(load_config(os.environ["GATEWAY_CONFIG"]),
                      log_prompts=os.environ.get("GATEWAY_LOG_PROMPTS") == "1",
                      hash_session_ids=os.environ.get("GATEWAY_HASH_SESSION_IDS") == "1",
                      otel=os.environ.get("GATEWAY_OTEL") == "1")


async def _safe_size(store: PinStore) -> int | None:
    try:
        return await store.size()
    except Exception:
        return None
