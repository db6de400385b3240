"""Pins in Redis, shared by every worker and replica of the gateway.

Keys are `pgw:v1:pin:<session key>`, values a small JSON object. The first
writer of a session wins atomically (SET NX), every read slides the TTL
(GETEX), and Redis being unreachable or slow makes calls fail fast so the
gateway routes without pins (fail open). An outage is logged once when it
starts and once when it ends, not once per request.
"""

from __future__ import annotations

import json
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .pins import Pin

log = logging.getLogger("gateway.pins.redis")

KEY_PREFIX = "pgw:v1:pin:"
OP_TIMEOUT = 0.25  # seconds; a pin lookup must never hold a request up for long
RETRY_AFTER = 1.0  # seconds to skip Redis after a failure before trying it again


class PinStoreUnavailable(Exception):
    """Redis could not be reached; the caller serves the request without a pin."""


class RedisPinStore:
    """Pins shared through Redis, first writer wins, TTL sliding on every read."""

    def __init__(self, url: str, ttl: int, max_entries: int | None = None) -> None:
        self.ttl = ttl
        self.url = url
        # max_entries is not enforced per key in Redis: pins expire by TTL, and
        # Redis's own maxmemory policy bounds memory (see README).
        self.max_entries = max_entries
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=OP_TIMEOUT, socket_connect_timeout=OP_TIMEOUT, health_check_interval=30,
            decode_responses=True,
            # A pooled connection that Redis, a proxy or a NAT dropped while idle fails
            # its next command; one immediate retry on a fresh connection hides that.
            retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError])
        self._down_since: float | None = None
        self._next_try = 0.0

    @staticmethod
    def _key(key: str) -> str:
        return KEY_PREFIX + key

    async def _call(self, command: str, *args):
        """Run one Redis command, failing fast while an outage is known."""
        now = time.monotonic()
        if self._down_since is not None and now < self._next_try:
            raise PinStoreUnavailable("redis is unreachable (retrying shortly)")
        try:
            result = await getattr(self._redis, command)(*args)
        except (RedisError, OSError, TimeoutError) as exc:
            if self._down_since is None:
                self._down_since = now
                log.warning("redis pin store at %s unreachable (%s); routing without pins until it returns",
                            _safe_url(self.url), type(exc).__name__)
            self._next_try = now + RETRY_AFTER
            raise PinStoreUnavailable(str(exc)) from None
        if self._down_since is not None:
            log.warning("redis pin store back after %.1fs; pins resume", now - self._down_since)
            self._down_since = None
        return result

    async def get(self, key: str) -> Pin | None:
        raw = await self._call("getex", self._key(key), self.ttl)
        if raw is None:
            return None
        data = json.loads(raw)
        return Pin(data["model"], data.get("route"), data.get("created", 0.0), time.time())

    async def put_if_absent(self, key: str, pin: Pin) -> Pin:
        value = json.dumps({"model": pin.model, "route": pin.route, "created": pin.created})
        if await self._call("set", self._key(key), value, self.ttl, None, True):  # EX ttl, NX
            return pin
        existing = await self.get(key)
        return existing if existing is not None else pin

    async def replace(self, key: str, pin: Pin) -> None:
        value = json.dumps({"model": pin.model, "route": pin.route, "created": pin.created})
        await self._call("set", self._key(key), value, self.ttl)

    async def peek(self, key: str) -> tuple[Pin, float] | None:
        """The pin and its seconds left, without refreshing its TTL."""
        raw = await self._call("get", self._key(key))
        if raw is None:
            return None
        left_ms = await self._call("pttl", self._key(key))
        left = max(0.0, left_ms / 1000) if left_ms and left_ms > 0 else 0.0
        data = json.loads(raw)
        last_used = time.time() - (self.ttl - left)
        return Pin(data["model"], data.get("route"), data.get("created", 0.0), last_used), left

    async def delete(self, key: str) -> bool:
        return bool(await self._call("delete", self._key(key)))

    async def size(self) -> int:
        count = 0
        async for _ in self._redis.scan_iter(match=KEY_PREFIX + "*", count=1000):
            count += 1
        return count

    async def close(self) -> None:
        await self._redis.aclose()


def _safe_url(url: str) -> str:
    """The URL without a password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
