"""The failover loop: retries, then the fallback chain, above whichever upstream fits each provider."""

from __future__ import annotations

import asyncio
import logging
import time

from ..config import Config, Provider
from ..errors import UpstreamError
from ..metrics import Metrics
from . import Answer, Call, Upstream, Wire
from .relay import RelayUpstream
from .translate import LitellmUpstream

log = logging.getLogger("gateway.forwarding")


class Forwarder:
    """Sends a client's request to a provider, retrying and failing over; errors come out scrubbed."""

    def __init__(self, config: Config, metrics: Metrics | None = None,
                 upstreams: list[Upstream] | None = None) -> None:
        self.config = config
        self.metrics = metrics
        # The first upstream that speaks (provider, wire) carries the call: the relay where
        # formats match, litellm for everything else. Tests may pass their own.
        self.upstreams: list[Upstream] = upstreams or [RelayUpstream(chat=config.openai_relay), LitellmUpstream()]
        self.secrets = [p.access_key for p in config.providers if p.access_key]

    def scrub(self, text: str) -> str:
        """`text` with every configured provider key masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def candidates(self, first: Provider) -> list[Provider]:
        """The chosen provider, then its `fallbacks` (the default model if none are set), without repeats."""
        chain = [first]
        if first.fallbacks is None:
            chain.append(self.config.default_provider)
        else:
            chain += [p for p in map(self.config.find, first.fallbacks) if p is not None]
        seen: list[Provider] = []
        for p in chain:
            if all(p is not s for s in seen):
                seen.append(p)
        return seen

    def upstream(self, provider: Provider, wire: Wire) -> Upstream:
        return next(u for u in self.upstreams if u.speaks(provider, wire))

    async def send(self, provider: Provider, wire: Wire, body: dict, headers: dict[str, str] | None = None) -> Answer:
        """Call `provider` (retrying, then failing over); the first answer that starts, or the last error."""
        last: UpstreamError | None = None
        attempts = 0
        spent = 0.0  # time inside provider calls, failed ones included (backoff sleeps are ours)
        for i, candidate in enumerate(self.candidates(provider)):
            if i > 0:
                log.warning("failing over from %s to %s: %s", provider.model, candidate.model, last)
            call = Call(candidate, wire, body, headers or {})
            for attempt in range(self.config.max_retries + 1):
                attempts += 1
                started = time.perf_counter()
                try:
                    answer = await self._attempt(call)
                except UpstreamError as exc:
                    spent += time.perf_counter() - started
                    last = exc
                    if self.metrics is not None:
                        self.metrics.upstream_errors.labels(candidate.model, str(exc.status)).inc()
                    if not exc.transient:
                        exc.upstream_seconds = spent
                        raise
                    if exc.code in ("provider_key_missing", "upstream_timeout"):
                        break  # retrying cannot help (a hang is not a blip); the next candidate might
                    if attempt < self.config.max_retries:
                        if self.metrics is not None:
                            self.metrics.retries.labels(candidate.model).inc()
                        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                    continue
                elapsed = time.perf_counter() - started
                answer.attempts = attempts
                answer.upstream_seconds = spent + elapsed
                if self.metrics is not None:
                    self.metrics.upstream_latency.labels(candidate.model, "true" if answer.stream else "false").observe(
                        elapsed)
                return answer
        assert last is not None
        last.upstream_seconds = spent
        raise last

    async def _attempt(self, call: Call) -> Answer:
        provider = call.provider
        if provider.access_key_source and not provider.access_key:
            raise UpstreamError(
                f"provider {provider.model} has no API key: set the environment variable "
                f"{provider.access_key_source.lstrip('$')} before starting the gateway",
                status=502, transient=True, code="provider_key_missing")
        try:
            return await self.upstream(provider, call.wire).send(call)
        except UpstreamError as exc:
            exc.message = self.scrub(exc.message)
            exc.args = (exc.message,)
            raise

    async def count_tokens(self, provider: Provider, wire: Wire, body: dict, headers: dict[str, str]) -> int:
        """Input tokens of a Messages `body` for `provider`: asked of it where it can answer, else estimated."""
        call = Call(provider, wire, body, headers)
        try:
            return await self.upstream(provider, wire).count_tokens(call)
        except UpstreamError as exc:
            exc.message = self.scrub(exc.message)
            exc.args = (exc.message,)
            raise

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.close()
