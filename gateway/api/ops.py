"""What operators and client probes ask for: health, metrics, the model list, the root URL."""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..pins import PinStore
from .flow import gateway_of

router = APIRouter(tags=["operations"])


@router.get("/", summary="The gateway is up (agent CLIs probe their base URL with HEAD or GET)")
async def root(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "pinning-gateway", "docs": "/docs"})


router.add_api_route("/", root, methods=["HEAD"], include_in_schema=False)


@router.get("/healthz", summary="Liveness, the router in use and the number of live pins")
async def healthz(request: Request) -> Response:
    gw = gateway_of(request)
    return JSONResponse({"status": "ok", "router": gw.decider.router.name, "pid": os.getpid(),
                         "pins": await _safe_size(gw.decider.store), "tasks": len(asyncio.all_tasks())})


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


async def _safe_size(store: PinStore) -> int | None:
    try:
        return await store.size()
    except Exception:
        return None
