"""Prometheus metrics: what an operator needs to run the gateway without reading its code.

Label values are always bounded: endpoints, configured model and route names,
outcomes and status codes; never a session id or any prompt text.
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# Decisions take microseconds; upstream calls take up to minutes.
ROUTER_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 2.5)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


class Metrics:
    """The gateway's metrics in their own registry (so several apps in one process never clash)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("gateway_requests", "Requests answered, by endpoint, status and serving model",
                                ["endpoint", "status", "model"], registry=r)
        self.decisions = Counter("gateway_routing_decisions",
                                 "Decisions by route (none when no route matched) and outcome "
                                 "(routed, no_route, pinned, kept, router_failed)", ["route", "outcome"], registry=r)
        self.router_latency = Histogram("gateway_router_latency_seconds", "Time the router took to decide",
                                        registry=r, buckets=ROUTER_BUCKETS)
        self.upstream_latency = Histogram("gateway_upstream_latency_seconds",
                                          "Provider time until the answer (plain) or its first chunk (streamed)",
                                          ["provider", "stream"], registry=r, buckets=UPSTREAM_BUCKETS)
        self.overhead = Histogram("gateway_added_latency_seconds",
                                  "Time the gateway itself added to a request, excluding the provider",
                                  ["endpoint"], registry=r, buckets=OVERHEAD_BUCKETS)
        self.failovers = Counter("gateway_failovers", "Requests served by another model than decided",
                                 ["from_model", "to_model"], registry=r)
        self.retries = Counter("gateway_retries", "Provider calls retried after a transient failure",
                               ["provider"], registry=r)
        self.upstream_errors = Counter("gateway_upstream_errors", "Failed provider calls, by provider and status",
                                       ["provider", "status"], registry=r)
        self.in_flight = Gauge("gateway_in_flight_requests", "Requests being served now", registry=r)
        self.tokens = Counter("gateway_tokens", "Tokens reported by providers", ["model", "kind"], registry=r)

    def watch_store(self, store: Any, decider_stats: Any) -> None:
        """Export the pin store's own counters (hits, misses, evictions, ...) at scrape time."""
        self.registry.register(_StoreCollector(store, decider_stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector:
    def __init__(self, store: Any, stats: Any) -> None:
        self.store = store
        self.stats = stats

    def describe(self) -> list:
        return []

    def collect(self):  # type: ignore[no-untyped-def]
        ops = CounterMetricFamily("gateway_pin_store_operations", "Pin store lookups and failures",
                                  labels=["result"])
        ops.add_metric(["hit"], self.stats.hits)
        ops.add_metric(["miss"], self.stats.misses)
        ops.add_metric(["error"], self.stats.store_errors)
        yield ops
        for name, attr, doc in (("gateway_pin_store_evictions", "evictions", "Pins evicted to stay under the limit"),
                                ("gateway_pin_store_expirations", "expirations", "Pins expired after their TTL")):
            value = getattr(self.store, attr, None)
            if value is not None:
                family = CounterMetricFamily(name, doc)
                family.add_metric([], value)
                yield family
        size: Callable[[], int] | None = getattr(self.store, "local_size", None)
        if size is not None:
            gauge = GaugeMetricFamily("gateway_pin_store_size", "Live pins in this process's store")
            gauge.add_metric([], size())
            yield gauge
