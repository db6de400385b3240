"""Optional OpenTelemetry spans for the decision and the upstream call.

Off by default and free when off. `gateway up --otel` (with the `otel` extra
installed: `pip install 'pinning-gateway[otel]'`) creates a span per request,
continuing the client's W3C `traceparent`, with children for the decision and
the provider call; the provider receives a `traceparent` naming the upstream
span. Export is configured by the standard OTEL_* environment variables
(OTLP over HTTP by default, `OTEL_TRACES_EXPORTER=console` to print spans).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

_OFF = nullcontext()


class Tracing:
    """Span helpers that do nothing unless enabled."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._tracer: Any = None
        if enabled:
            self._setup()

    def _setup(self) -> None:
        try:
            from opentelemetry import propagate, trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
        except ImportError:
            raise RuntimeError("--otel needs the OpenTelemetry packages: pip install 'pinning-gateway[otel]'") from None
        provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
            "OTEL_SERVICE_NAME", "pinning-gateway")}))
        if os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        self._tracer = trace.get_tracer("gateway")
        self._propagate = propagate

    def request(self, endpoint: str, headers: Any) -> AbstractContextManager[Any]:
        """The request's span, a child of the client's traceparent when it sent one."""
        if not self.enabled:
            return _OFF
        parent = self._propagate.extract({"traceparent": headers.get("traceparent", "")})
        return self._tracer.start_as_current_span(f"POST {endpoint}", context=parent, kind=_server_kind())

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        if not self.enabled:
            return _OFF
        return self._tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items()
                                                                    if v is not None})

    def traceparent(self, client_value: str | None) -> str | None:
        """What to send the provider: the current span's context, else what the client sent."""
        if not self.enabled:
            return client_value
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier)
        return carrier.get("traceparent", client_value)


def annotate(span: Any, **attributes: Any) -> None:
    """Set attributes on a span from `Tracing.span` (a no-op when tracing is off)."""
    if span is not None:
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)


def _server_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER
