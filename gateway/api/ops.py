"""What operators and client probes ask for: health, metrics, the model list, the root URL."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import litellm_loader
from ..pins import PinStore
from .flow import gateway_of

if TYPE_CHECKING:
    from ..app import Gateway

router = APIRouter(tags=["operations"])


@router.get("/", summary="The gateway is up (agent CLIs probe their base URL with HEAD or GET)")
async def root(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "pinning-gateway", "docs": "/docs"})


router.add_api_route("/", root, methods=["HEAD"], include_in_schema=False)


@router.get("/healthz", summary="Liveness: the process serves (cheap, no call to the pin store)")
async def healthz(request: Request) -> Response:
    gw = gateway_of(request)
    body = {"status": "ok", "router": gw.decider.router.name, "pid": os.getpid(), "tasks": len(asyncio.all_tasks())}
    # Only a store that counts its pins in O(1) says how many (the memory store); Redis would need a SCAN.
    count: Callable[[], int] | None = getattr(gw.decider.store, "local_size", None)
    if count is not None:
        body["pins"] = count()
    return JSONResponse(body)


@router.get("/readyz", summary="Readiness: 503 until the router is loaded; says whether the pin store answers")
async def readyz(request: Request) -> Response:
    """503 while this replica cannot decide (its router is not loaded); 200 otherwise.

    An unreachable pin store is reported ("degraded") but leaves the replica
    ready: it still answers every request, only without pins (fail open), and a
    shared Redis failing would otherwise take every replica out of its load
    balancer at once. `?strict=1` makes the pin store count too, for operators
    who prefer no answer to an unpinned one.
    """
    gw = gateway_of(request)
    checks = {"router": _router_check(gw), "pin_store": await _store_check(gw.decider.store)}
    strict = request.query_params.get("strict") in ("1", "true")
    ready = checks["router"]["ready"] and (checks["pin_store"]["ready"] or not strict)
    status = "not ready" if not ready else "ready" if checks["pin_store"]["ready"] else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(gateway_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", summary="The configured models and aliases, in OpenAI's list format")
async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    gw.client(request)
    config = gw.config
    created = int(time.time())
    data = [{"id": p.model, "object": "model", "created": created, "owned_by": p.provider}
            for p in config.providers]
    for alias, target in config.aliases.items():
        if "*" not in alias and "?" not in alias:
            data.append({"id": alias, "object": "model", "created": created,
                         "owned_by": config.find(target).provider})  # type: ignore[union-attr]
    return JSONResponse({"object": "list", "data": data})


def _router_check(gw: Gateway) -> dict[str, Any]:
    """The router is built before the server listens; an LLM router also needs litellm, imported in the background."""
    name = gw.decider.router.name
    if gw.config.routing.model and not litellm_loader.start_import().done():
        return {"ready": False, "detail": f"the {name} router waits for litellm's import (a few seconds after "
                                          "start); probe again shortly"}
    return {"ready": True, "detail": f"{name} router loaded"}


async def _store_check(store: PinStore) -> dict[str, Any]:
    """One PING, bounded by the store's own timeout; a store without `ping` lives in this process."""
    ping: Callable[[], Awaitable[str]] | None = getattr(store, "ping", None)
    if ping is None:
        return {"ready": True, "detail": "in-process memory store"}
    try:
        return {"ready": True, "detail": await ping()}
    except Exception as exc:
        return {"ready": False, "detail": (
            f"{exc}. Start Redis or fix routing.session_cache.url; meanwhile requests are served "
            "without pins (sessions are not kept on one model)")}
