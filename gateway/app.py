"""The HTTP surface: parse, ask the decision, present it (and forward, on /v1)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from . import validation
from .config import Config
from .decision import Decider, Decision
from .errors import GatewayError, NotFound, Unauthorized
from .forwarding import Forwarder
from .pins import MemoryPinStore, PinStore
from .routers import Router, build_router

log = logging.getLogger("gateway.app")
access = logging.getLogger("gateway.access")


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

    def __init__(self, config: Config, router: Router | None = None, store: PinStore | None = None) -> None:
        self.config = config
        self.decider = Decider(config, router or build_router(config), store or build_store(config))
        self.forwarder = Forwarder(config)
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


def create_app(config: Config, *, router: Router | None = None, store: PinStore | None = None) -> FastAPI:
    """The ASGI application serving `config`."""
    gw = Gateway(config, router=router, store=store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await gw.forwarder.close()
        await gw.decider.store.close()

    app = FastAPI(title="pinning-gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gw

    @app.exception_handler(GatewayError)
    async def on_gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": {"message": "internal gateway error; see the gateway log "
                                       "for details", "type": "server_error", "code": "internal_error"}},
                            status_code=500)

    async def decide(request: Request) -> tuple[dict[str, Any], Decision, str, str | None]:
        client = gw.client(request)
        trace = validation.trace_id(request)
        sid = validation.session_id(request)
        body = await validation.read_body(request, config.max_body_bytes)
        key = gw.session_key(request, client, sid)
        decision = await gw.decider.decide(body, key, sid)
        return body, decision, trace, key

    @app.post("/routing/v1/chat/completions")
    async def routing_decision(request: Request) -> Response:
        started = time.perf_counter()
        body, decision, trace, _ = await decide(request)
        payload: dict[str, Any] = {"model": decision.model, "route": decision.route, "trace_id": trace}
        if decision.session_id is not None:
            payload["session_id"] = decision.session_id
        payload["pinned"] = decision.pinned
        _log(request, decision, trace, 200, started)
        return JSONResponse(payload, headers=decision_headers(decision, trace))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        body, decision, trace, key = await decide(request)
        headers = decision_headers(decision, trace)
        traceparent = request.headers.get("traceparent")
        try:
            answer = await gw.forwarder.send(decision.provider, body,
                                             {"traceparent": traceparent} if traceparent else None)
        except GatewayError as exc:
            _log(request, decision, trace, exc.status, started)
            return error_response(exc, headers)
        if answer.provider is not decision.provider:
            # Failed over: the session follows the model the agent actually heard from.
            if key is not None:
                await gw.decider.repin(key, decision, answer.provider)
            headers.update({"X-Router-Model": answer.provider.model, "X-Router-Pinned": "false",
                            "X-Router-Failover": f"{decision.model} -> {answer.provider.model}"})
        _log(request, decision, trace, 200, started)
        if answer.stream is None:
            return Response(answer.body, media_type="application/json", headers=headers)
        # Events arrive as finished SSE bytes; sse-starlette adds keep-alive pings on quiet streams.
        return EventSourceResponse(answer.stream, headers=headers, sep="\n", ping=15)

    @app.get("/routing/v1/sessions/{session_id}")
    async def show_session(request: Request, session_id: str) -> Response:
        key = _admin_key(request, session_id)
        found = await gw.decider.store.peek(key)
        if found is None:
            raise NotFound(f"no live pin for session {session_id!r} (never pinned, expired or evicted)")
        pin, left = found
        return JSONResponse({"session_id": session_id, "model": pin.model, "route": pin.route,
                             "created": pin.created, "last_used": pin.last_used,
                             "seconds_left": round(left, 3)})

    @app.delete("/routing/v1/sessions/{session_id}")
    async def unpin_session(request: Request, session_id: str) -> Response:
        if not await gw.decider.unpin(_admin_key(request, session_id)):
            raise NotFound(f"no live pin for session {session_id!r}; nothing to unpin")
        return JSONResponse({"session_id": session_id, "deleted": True})

    def _admin_key(request: Request, session_id: str) -> str:
        client = gw.client(request)
        validation.check_session_id(session_id)
        return gw.session_key(request, client, session_id)  # type: ignore[return-value]

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        gw.client(request)
        created = int(time.time())
        data = [{"id": p.model, "object": "model", "created": created, "owned_by": p.provider}
                for p in config.providers]
        data += [{"id": alias, "object": "model", "created": created,
                  "owned_by": config.find(alias).provider} for alias in config.aliases]  # type: ignore[union-attr]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok", "router": gw.decider.router.name,
                             "pins": await _safe_size(gw.decider.store), "tasks": len(asyncio.all_tasks())})

    return app


def app_from_env() -> FastAPI:
    """App factory for worker processes: `gateway up --workers N` passes the config path in GATEWAY_CONFIG."""
    import os

    from .config import load_config

    return create_app(load_config(os.environ["GATEWAY_CONFIG"]))


async def _safe_size(store: PinStore) -> int | None:
    try:
        return await store.size()
    except Exception:
        return None


def _log(request: Request, decision: Decision, trace: str, status: int, started: float) -> None:
    if access.isEnabledFor(logging.INFO):
        access.info(json.dumps({
            "trace_id": trace, "endpoint": request.url.path, "session_id": decision.session_id,
            "route": decision.route, "model": decision.model, "pinned": decision.pinned,
            "outcome": decision.outcome, "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }))

