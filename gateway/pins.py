"""Session pin stores: where a session's model lives between requests.

Two stores share one interface: `MemoryPinStore` (in process, the default) and
`RedisPinStore` (in `redis_pins.py`, shared by workers and replicas). Both slide
the TTL on every read and keep the first pin written for a session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Protocol

from cachetools import TTLCache


@dataclass(frozen=True)
class Pin:
    """The model a session is pinned to and how it got there."""

    model: str
    route: str | None
    created: float  # wall clock, seconds since the epoch
    last_used: float


class PinStore(Protocol):
    """What the decision needs from a pin store."""

    ttl: int

    async def get(self, key: str) -> Pin | None:
        """The live pin for `key`, refreshing its TTL; None when absent or expired."""

    async def put_if_absent(self, key: str, pin: Pin) -> Pin:
        """Store `pin` unless `key` already has one; return the pin that is now stored."""

    async def replace(self, key: str, pin: Pin) -> None:
        """Overwrite the pin for `key` (a failover re-pins to the model that answered)."""

    async def peek(self, key: str) -> tuple[Pin, float] | None:
        """The pin and its seconds left, without refreshing its TTL (for the admin API)."""

    async def delete(self, key: str) -> bool:
        """Forget `key`; True if it had a pin."""

    async def size(self) -> int:
        """Number of live pins."""

    async def close(self) -> None:
        """Release connections."""


class _CountingTTLCache(TTLCache):
    """A TTLCache that counts LRU evictions and expirations (for metrics and tests)."""

    def __init__(self, maxsize: int, ttl: int, timer=time.monotonic) -> None:
        super().__init__(maxsize=maxsize, ttl=ttl, timer=timer)
        self.evictions = 0
        self.expirations = 0

    def popitem(self):  # called by cachetools only to make room (LRU eviction)
        self.evictions += 1
        return super().popitem()

    def expire(self, time=None):
        expired = super().expire(time)
        self.expirations += len(expired)
        return expired


class MemoryPinStore:
    """In-process pins: LRU-bounded to `max_entries`, TTL sliding from last use."""

    def __init__(self, ttl: int, max_entries: int, timer=time.monotonic, clock=time.time) -> None:
        self.ttl = ttl
        self._clock = clock
        self._cache = _CountingTTLCache(maxsize=max_entries, ttl=ttl, timer=timer)

    @property
    def evictions(self) -> int:
        return self._cache.evictions

    @property
    def expirations(self) -> int:
        return self._cache.expirations

    async def get(self, key: str) -> Pin | None:
        pin = self._cache.get(key)
        if pin is None:
            return None
        pin = replace(pin, last_used=self._clock())
        self._cache[key] = pin  # re-setting restarts the TTL and marks it most recently used
        return pin

    async def put_if_absent(self, key: str, pin: Pin) -> Pin:
        existing = self._cache.get(key)
        if existing is not None:
            return existing
        self._cache[key] = pin
        return pin

    async def replace(self, key: str, pin: Pin) -> None:
        self._cache[key] = pin

    async def peek(self, key: str) -> tuple[Pin, float] | None:
        pin = self._cache.get(key)
        if pin is None:
            return None
        return pin, max(0.0, self.ttl - (self._clock() - pin.last_used))

    async def delete(self, key: str) -> bool:
        return self._cache.pop(key, None) is not None

    async def size(self) -> int:
        return self.local_size()

    def local_size(self) -> int:
        """Live pins (synchronous: the metrics scrape reads it)."""
        self._cache.expire()
        return len(self._cache)

    async def close(self) -> None:
        self._cache.clear()
