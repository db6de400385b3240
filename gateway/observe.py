"""Per-request accounting: one log line and the metrics, written when a request ends."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from .decision import Decision
from .logs import REQUEST_LOG
from .metrics import Metrics


@dataclass
class RequestRecord:
    """What one request did, filled in as it goes."""

    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    trace_id: str | None = None
    session_id: str | None = None
    session_source: str | None = None  # where the session id came from, e.g. header:x-session-id
    decision: Decision | None = None
    served_by: str | None = None  # the model that answered (differs from the decision after a failover)
    status: int = 200
    upstream_seconds: float = 0.0  # provider time: the whole answer, or until the first streamed event
    usage: dict[str, int] | None = None
    error: str | None = None
    prompt: str | None = None  # only with --log-prompts
    finished: bool = False

    def overhead(self) -> float:
        """Seconds the gateway itself has added so far."""
        return max(0.0, time.perf_counter() - self.started - self.upstream_seconds)


class Observer:
    """Turns finished RequestRecords into a log line and metric updates."""

    def __init__(self, metrics: Metrics, hash_session_ids: bool = False) -> None:
        self.metrics = metrics
        self.hash_session_ids = hash_session_ids
        self._children: dict[tuple, Any] = {}  # labelled metrics, looked up once per label set

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:  # label values are bounded (models, routes, statuses), so this stays small
            child = self._children[key] = metric.labels(*labels)
        return child

    def finish(self, record: RequestRecord) -> None:
        if record.finished:
            return
        record.finished = True
        total = time.perf_counter() - record.started
        m = self.metrics
        decision = record.decision
        model = record.served_by or (decision.model if decision else "-")
        self._child(m.requests, record.endpoint, str(record.status), model).inc()
        if decision is not None:
            self._child(m.decisions, decision.route or "none", decision.outcome).inc()
            if record.served_by and record.served_by != decision.model:
                self._child(m.failovers, decision.model, record.served_by).inc()
        self._child(m.overhead, record.endpoint).observe(max(0.0, total - record.upstream_seconds))
        if record.usage:
            for kind in ("prompt_tokens", "completion_tokens"):
                if record.usage.get(kind):
                    self._child(m.tokens, model, kind.split("_")[0]).inc(record.usage[kind])
        if REQUEST_LOG.enabled:
            REQUEST_LOG.write(self._fields(record, model, total))

    def _fields(self, r: RequestRecord, model: str, total: float) -> dict[str, Any]:
        session = r.session_id
        if session is not None and self.hash_session_ids:
            session = "sha256:" + hashlib.sha256(session.encode()).hexdigest()[:16]
        d = r.decision
        fields: dict[str, Any] = {
            "trace_id": r.trace_id, "endpoint": r.endpoint, "session_id": session, "session_source": r.session_source,
            "route": d.route if d else None, "model": model, "pinned": d.pinned if d else None,
            "outcome": d.outcome if d else None, "status": r.status,
            "upstream_ms": round(r.upstream_seconds * 1000, 3) if r.upstream_seconds else None,
            "gateway_ms": round((total - r.upstream_seconds) * 1000, 3),
        }
        if d is not None and r.served_by and r.served_by != d.model:
            fields["failover_from"] = d.model
        if r.usage:
            fields.update(prompt_tokens=r.usage.get("prompt_tokens"), completion_tokens=r.usage.get("completion_tokens"))
        if r.error:
            fields["error"] = r.error
        if r.prompt is not None:
            fields["prompt"] = r.prompt
        return fields
