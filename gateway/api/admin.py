"""The admin API: look at or drop one session's pin (`/routing/v1/sessions/{id}`), reload the config."""

from __future__ import annotations

import ipaddress
import os
import signal

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import GatewayError, NotFound, Unavailable
from ..sessions import check_session_id
from .flow import gateway_of

router = APIRouter(tags=["sessions"])


def _key(request: Request, session_id: str) -> str:
    gw = gateway_of(request)
    client = gw.client(request)
    check_session_id(session_id, "session id")
    return gw.tenant(request, client) + session_id


def _store_down(exc: Exception) -> Unavailable:
    return Unavailable(f"the pin store is unreachable ({type(exc).__name__}); try again when it is back")


@router.get("/routing/v1/sessions/{session_id:path}", summary="A session's pin: model, route and seconds left")
async def show_session(session_id: str, request: Request) -> Response:
    key = _key(request, session_id)
    try:
        found = await gateway_of(request).decider.store.peek(key)
    except Exception as exc:
        raise _store_down(exc) from None
    if found is None:
        raise NotFound(f"no live pin for session {session_id!r} (never pinned, expired or evicted)")
    pin, left = found
    return JSONResponse({"session_id": session_id, "model": pin.model, "route": pin.route,
                         "created": pin.created, "last_used": pin.last_used, "seconds_left": round(left, 3)})


@router.delete("/routing/v1/sessions/{session_id:path}", summary="Unpin a session: its next request routes afresh")
async def unpin_session(session_id: str, request: Request) -> Response:
    key = _key(request, session_id)
    try:
        deleted = await gateway_of(request).decider.unpin(key)
    except Exception as exc:
        raise _store_down(exc) from None
    if not deleted:
        raise NotFound(f"no live pin for session {session_id!r}; nothing to unpin")
    return JSONResponse({"session_id": session_id, "deleted": True})


@router.post("/routing/v1/reload", summary="Re-read the config file: a valid one serves new requests, "
             "one with problems is refused and the old one keeps serving")
async def reload_config(request: Request) -> Response:
    from ..app import reload_and_log  # app.py mounts this module

    gw = gateway_of(request)
    gw.client(request)  # any gateway key may reload when keys are configured
    if not gw.config.auth_keys and not _from_loopback(request):
        error = GatewayError("reloading from another machine needs gateway keys (auth.keys); run `gateway reload` "
                             "on the gateway's host, or configure keys", code="forbidden")
        error.status = 403
        raise error
    supervisor = getattr(request.app.state, "supervisor_pid", None)
    problems = await reload_and_log(request.app, check_only=supervisor is not None)
    if problems:
        return JSONResponse({"error": {"message": "the new config has problems; the previous one keeps serving",
                                       "type": "invalid_request_error", "param": None, "code": "config_invalid"},
                             "problems": problems}, status_code=422)
    if supervisor is not None:  # several workers: their supervisor replaces them all, one by one
        os.kill(supervisor, signal.SIGHUP)
        return JSONResponse({"reloaded": "the workers are being replaced one by one", "config": gw.config.source},
                            status_code=202)
    config = gateway_of(request).config
    return JSONResponse({"reloaded": True, "config": config.source, "models": [p.model for p in config.providers],
                         "routes": [r.name for r in config.routes]})


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
