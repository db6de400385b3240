"""The failover loop: retries, then the fallback chain, above whichever upstream fits each provider."""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import parsedate_to_datetime
from typing import Callable

from ..config import Config, Provider
from ..errors import BadRequest, UpstreamError
from ..metrics import Metrics
from . import Answer, Call, Upstream, Wire
from .endpoints import native_wire
from .relay import RelayUpstream
from .translate import LitellmUpstream

log = logging.getLogger("gateway.forwarding")


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (a number of seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
        self._chains: dict[tuple[str, str | None], list[Provider]] = {}  # (model, route) -> candidates

    def scrub(self, text: str) -> str:
        """`text` with every configured provider key masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def candidates(self, first: Provider, route: str | None = None) -> list[Provider]:
        """The chosen provider, then the rest of its route's `models` pool (Plano v0.4), then its
        `fallbacks` (the default model if none are set), without repeats; worked out once per pair."""
        key = (first.model, route)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = self._chain(first, route)
        return chain

    def _chain(self, first: Provider, route: str | None) -> list[Provider]:
        chain = [first]
        pool = self.config.route(route)
        if pool is not None and first.model in (pool.model, *pool.fallbacks):
            chain += [p for p in map(self.config.find, (pool.model, *pool.fallbacks)) if p is not None]
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

    async def send(self, provider: Provider, wire: Wire, body: dict, headers: dict[str, str] | None = None,
                   prepare: Callable[[Provider, dict], dict] | None = None, route: str | None = None) -> Answer:
        """Call `provider` (retrying, then failing over); the first answer that starts, or the last error.

        `prepare(candidate, body)` gives the body a candidate is sent (a protocol may
        need to adapt it), or raises BadRequest when that candidate cannot serve the
        request: the chosen provider's refusal goes to the client, a fallback's
        only takes that fallback out of the chain.
        """
        last: UpstreamError | None = None
        tried: list[str] = []
        attempts = 0
        spent = 0.0  # time inside provider calls, failed ones included (backoff sleeps are ours)
        deadline = time.monotonic() + self.config.request_timeout
        for i, candidate in enumerate(self.candidates(provider, route)):
            try:
                sent = prepare(candidate, body) if prepare is not None else body
            except BadRequest as exc:
                if i == 0:
                    raise
                log.warning("not failing over to %s: %s", candidate.model, exc.message)
                continue
            if i > 0:
                log.warning("failing over from %s to %s: %s", provider.model, candidate.model, last)
            tried.append(candidate.model)
            call = Call(candidate, wire, sent, headers or {})
            for attempt in range(self.config.max_retries + 1):
                attempts += 1
                started = time.perf_counter()
                try:
                    answer = await self._attempt(call, deadline, tried)
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
                    if attempt == self.config.max_retries:
                        continue
                    pause = self._pause(exc, attempt, deadline)
                    if pause is None:
                        break  # it asks for longer than the deadline leaves: the next candidate, if any
                    if self.metrics is not None:
                        self.metrics.retries.labels(candidate.model).inc()
                    await asyncio.sleep(pause)
                    continue
                elapsed = time.perf_counter() - started
                answer.attempts = attempts
                answer.upstream_seconds = spent + elapsed
                if self.metrics is not None:
                    self.metrics.upstream_latency.labels(candidate.model, "true" if answer.stream else "false").observe(
                        elapsed)
                return answer
        assert last is not None
        if len(tried) > 1 and last.code != "deadline_exceeded":  # say everything that was tried
            last.reword(f"{last.message} (tried {', then '.join(tried)})")
        last.upstream_seconds = spent
        raise last

    def _pause(self, error: UpstreamError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before retrying after `error`, or None when the wait would outlast the deadline.

        A 429's Retry-After is honoured; otherwise a short exponential backoff.
        """
        left = deadline - time.monotonic()
        asked = _retry_after(error.headers.get("Retry-After")) if error.status == 429 else None
        pause = asked if asked is not None else min(0.05 * 2**attempt, 1.0)
        return pause if pause < left else None

    def _past_deadline(self, tried: list[str]) -> UpstreamError:
        return UpstreamError(
            f"no provider answered within the request's deadline of {self.config.request_timeout:g}s "
            f"(tried {', then '.join(tried)}); the deadline is the listener's `timeout` in the config",
            status=504, transient=False, code="deadline_exceeded")

    @staticmethod
    def _check_key(provider: Provider) -> None:
        if provider.access_key_source and not provider.access_key:
            raise UpstreamError(
                f"provider {provider.model} has no API key: set the environment variable "
                f"{provider.access_key_source.lstrip('$')} before starting the gateway",
                status=502, transient=True, code="provider_key_missing")

    async def _attempt(self, call: Call, deadline: float, tried: list[str]) -> Answer:
        provider = call.provider
        self._check_key(provider)
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._past_deadline(tried)
        bound = asyncio.timeout(left)
        try:
            async with bound:
                return await self.upstream(provider, call.wire).send(call)
        except UpstreamError as exc:
            exc.reword(self.scrub(exc.message))
            raise
        except TimeoutError:
            if bound.expired():
                raise self._past_deadline(tried) from None
            raise

    async def count_tokens(self, provider: Provider, wire: Wire, body: dict, headers: dict[str, str]) -> int:
        """Input tokens of a Messages `body` for `provider`: asked of it where it can answer, else estimated."""
        call = Call(provider, wire, body, headers)
        try:
            if native_wire(provider, wire.name):  # asked of the provider itself: it needs its key
                self._check_key(provider)
            return await self.upstream(provider, wire).count_tokens(call)
        except UpstreamError as exc:
            exc.reword(self.scrub(exc.message))
            raise

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.close()
