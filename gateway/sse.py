"""Server-sent events out to the client, through sse-starlette's EventSourceResponse.

The events arrive already encoded in the client's wire format (relayed or
translated), so they pass through as bytes. Two things are ours:

- the first event has already arrived when the response is built; it is sent
  from the handler's own task, before sse-starlette starts its task group, so
  the time to first token is not spent scheduling;
- the stream's ending (finished, broken upstream, client gone) is reported
  once, to `on_close`, for the request log and metrics.

sse-starlette cancels the stream (and with it the upstream request) as soon as
the client disconnects, and sends keep-alive comments while a model is silent.
Events are sent without a timeout scope of their own (one per event was the
largest per-event cost); a client that stops reading is still dropped, by the
next keep-alive, whose send times out after `SEND_TIMEOUT` seconds and ends
the stream.
"""

from __future__ import annotations

from typing import AsyncIterator, Callable

from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

PING_SECONDS = 15  # a comment line while the model thinks, so proxies keep the connection open
SEND_TIMEOUT = 30.0  # a client that has not taken an event for this long is gone; free the upstream


class EventStream(EventSourceResponse):
    """An SSE response relaying finished event bytes, the first of which is `first`."""

    def __init__(self, first: bytes, events: AsyncIterator[bytes], headers: dict[str, str],
                 on_close: Callable[[str | None], None] | None = None) -> None:
        super().__init__(events, headers={**headers, "Cache-Control": "no-cache"}, ping=PING_SECONDS,
                         send_timeout=SEND_TIMEOUT)
        self.first = first
        self.on_close = on_close  # told how the stream ended: None, "stream_interrupted" or "client_disconnected"
        self.completed = False

    async def _stream_response(self, send: Send) -> None:
        # The start and the first event went out in __call__; the rest follows as it comes.
        async for event in self.body_iterator:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        async with self._send_lock:
            self.active = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.completed = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.first, "more_body": True})
            await super().__call__(scope, receive, send)
        except OSError:
            pass  # the client went away mid-send
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]  # closes the upstream response whatever ended the stream
            if self.on_close is not None:
                self.on_close(None if self.completed else "client_disconnected")
