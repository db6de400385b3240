"""The session admin API: look at or drop one session's pin (`/routing/v1/sessions/{id}`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import NotFound, Unavailable
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
