"""The request flow every API surface shares: read, decide, then answer the decision or forward.

A surface (chat, messages, responses) supplies a `Surface`: how to check its
body and turn it into an `Ask`, its `Wire` for the upstream layer, and how its
errors look. Everything else (gateway keys, session identity, the decision,
failover, re-pinning, headers, the request log) happens here, the same for all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import validation
from ..config import Provider
from ..conversation import user_turns
from ..decision import Ask, Decision
from ..errors import GatewayError
from ..observe import RequestRecord
from ..sessions import identify
from ..sse import EventStream
from ..tracing import annotate
from ..upstream import Answer, Wire

if TYPE_CHECKING:
    from ..app import Gateway


class Surface(Protocol):
    """What one client protocol contributes to the shared flow."""

    wire: Wire
    forward_path: str
    decision_path: str

    def ask(self, body: dict[str, Any]) -> Ask:
        """Check the body (BadRequest naming the first wrong field) and say what the decision needs."""

    def check_forward(self, body: dict[str, Any]) -> None:
        """BadRequest for what only forwarding needs (checked before the decision, so a refusal pins nothing)."""

    def upstream_headers(self, request: Request) -> dict[str, str]:
        """Client headers the provider should see (e.g. anthropic-version)."""

    def before_forward(self, request: Request, body: dict[str, Any], provider: Provider) -> dict[str, Any]:
        """The body to send `provider` (adapted if it must be), or BadRequest if it cannot serve it.

        Asked of the chosen provider and of every fallback before it is tried.
        """

    def after_answer(self, request: Request, answer: Answer) -> None:
        """See the answer on its way back (e.g. to remember what it said); may wrap `answer.stream`."""

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """`error` in this protocol's error shape."""


class SurfaceDefaults:
    """What a surface does unless it says otherwise: OpenAI's error shape, nothing extra to check or carry."""

    def check_forward(self, body: dict[str, Any]) -> None:
        return None

    def upstream_headers(self, request: Request) -> dict[str, str]:
        return {}

    def before_forward(self, request: Request, body: dict[str, Any], provider: Provider) -> dict[str, Any]:
        return body

    def after_answer(self, request: Request, answer: Answer) -> None:
        return None

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return error.body()


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


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


def error_response(surface: Surface | None, error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    body = surface.error_body(error) if surface is not None else error.body()
    return JSONResponse(body, status_code=error.status, headers={**(headers or {}), **error.headers})


async def decide(gw: Gateway, request: Request, surface: Surface, record: RequestRecord, forwarding: bool = False
                 ) -> tuple[dict[str, Any], Decision, str | None]:
    """Read and check the request, find its session, and decide: (body, decision, pin key)."""
    state = request.state
    state.record = record  # the error handler finishes it if anything below raises
    state.surface = surface  # ... and renders the error in this protocol's shape
    client = gw.client(request)
    state.tenant = tenant = gw.tenant(request, client)  # scopes the pin and anything else kept per tenant
    record.trace_id = validation.trace_id(request)
    body = await validation.read_json(request, gw.config.max_body_bytes)
    ask = surface.ask(body)
    if forwarding:
        surface.check_forward(body)
    who = identify(gw.config.routing, request.headers, body, lambda: ask.opening, tenant)
    record.session_id, record.session_source = who.session_id, who.source
    if gw.log_prompts:
        record.prompt = (user_turns(ask.messages, 1) or [""])[0][:500]
    sid, key = who.session_id, who.key
    with gw.tracing.span("gateway.decide", session_id=sid) as span:
        record.decision = decision = await gw.decider.decide(ask, key, sid, who.conversation_key)
        annotate(span, model=decision.model, route=decision.route, pinned=decision.pinned, outcome=decision.outcome)
    return body, decision, key


def _stamp_overhead(record: RequestRecord, headers: dict[str, str]) -> None:
    headers["X-Gateway-Overhead-Ms"] = f"{record.overhead() * 1000:.3f}"


async def answer_decision(request: Request, surface: Surface) -> Response:
    """The decision only, as Plano's routing endpoint answers it; no provider is called."""
    gw = gateway_of(request)
    record = RequestRecord(surface.decision_path)
    with gw.tracing.request(surface.decision_path, request.headers):
        _, decision, _ = await decide(gw, request, surface, record)
        payload: dict[str, Any] = {"model": decision.model, "route": decision.route, "trace_id": record.trace_id}
        if decision.session_id is not None:
            payload["session_id"] = decision.session_id
            payload["session_source"] = record.session_source
        payload["pinned"] = decision.pinned
        headers = decision_headers(decision, record.trace_id)  # type: ignore[arg-type]
        _stamp_overhead(record, headers)
        gw.observer.finish(record)
        return JSONResponse(payload, headers=headers)


async def forward(request: Request, surface: Surface) -> Response:
    """Decide, send to the chosen provider (failing over if it must), and relay its answer."""
    gw = gateway_of(request)
    record = RequestRecord(surface.forward_path)
    with gw.tracing.request(surface.forward_path, request.headers):
        body, decision, key = await decide(gw, request, surface, record, forwarding=True)
        headers = decision_headers(decision, record.trace_id)  # type: ignore[arg-type]
        passed = surface.upstream_headers(request)
        try:
            with gw.tracing.span("gateway.upstream", provider=decision.model) as span:
                traceparent = gw.tracing.traceparent(request.headers.get("traceparent"))
                if traceparent:
                    passed["traceparent"] = traceparent
                answer = await gw.forwarder.send(decision.provider, surface.wire, body, passed,
                                                 prepare=lambda p, b: surface.before_forward(request, b, p),
                                                 route=decision.route)
                annotate(span, answered_by=answer.provider.model, attempts=answer.attempts,
                         stream=answer.stream is not None)
        except GatewayError as exc:
            record.status, record.error = exc.status, exc.code
            record.upstream_seconds = getattr(exc, "upstream_seconds", 0.0)
            _stamp_overhead(record, headers)
            gw.observer.finish(record)
            return error_response(surface, exc, headers)
        record.served_by, record.upstream_seconds, record.usage = (
            answer.provider.model, answer.upstream_seconds, answer.usage)
        await gw.decider.answered(key, decision, answer.provider)
        surface.after_answer(request, answer)
        if answer.provider is not decision.provider:
            headers.update({"X-Router-Model": answer.provider.model, "X-Router-Pinned": "false",
                            "X-Router-Failover": f"{decision.model} -> {answer.provider.model}"})
        _stamp_overhead(record, headers)
        if answer.stream is None:
            gw.observer.finish(record)
            return Response(answer.body, media_type="application/json", headers=headers)

        def stream_closed(ending: str | None) -> None:
            record.error = answer.ending or ending
            gw.observer.finish(record)

        first = await anext(answer.stream)  # already arrived: the upstream fetched it before answering
        return EventStream(first, answer.stream, headers, on_close=stream_closed)
