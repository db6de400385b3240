"""Session pin stores: where a session's model lives between requests.

Two stores share one interface: `MemoryPinStore` (in process, the default) and
`RedisPinStore` (in `redis_pins.py`, shared by workers and replicas). Both slide
the TTL on every read and keep the first pin written for a session.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from cachetools import TTLCache


@dataclass(slots=True)
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


class _Pins(TTLCache):
    """One tenant's pins: LRU order and TTL from cachetools, telling its owner about every pin that leaves."""

    def __init__(self, ttl: float, timer: Callable[[], float], left: Callable[[int], None]) -> None:
        super().__init__(math.inf, ttl, timer=timer)  # the store, not each tenant, enforces the bound
        self._left = left

    def expire(self, time: float | None = None) -> list[tuple[str, Any]]:
        expired = super().expire(time)
        if expired:
            self._left(len(expired))
        return expired


def tenant_of(key: str) -> str:
    """The tenant part of a pin key: its first length-prefixed part (see sessions.tenant_prefix), else ""."""
    length, colon, rest = key.partition(":")
    if colon and length.isdigit():
        n = int(length)
        if rest[n:n + 1] == "/":
            return rest[:n]
    return ""


class MemoryPinStore:
    """In-process pins: at most `max_entries`, each living `ttl` seconds from its last use.

    Each tenant (the gateway key's name, else the tenant header's value; see
    `tenant_of`) keeps its pins in its own cachetools TTLCache, which drops
    pins whose TTL ran out and knows which of them was used least recently.
    Every read writes the pin back, which restarts its TTL (the sliding TTL an
    agent loop needs). When the store is full, the pin that goes is the least
    recently used one of the tenant holding the most pins: one tenant opening
    sessions without end evicts its own pins, never those of a smaller tenant.
    With a single tenant this is plain LRU.
    """

    def __init__(self, ttl: int, max_entries: int, timer: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.evictions = 0
        self.expirations = 0
        self._timer = timer  # for expiry: monotonic, immune to wall-clock jumps
        self._clock = clock  # for the created/last_used shown to people
        # tenant -> its pins: key -> (pin, last use on `timer`); the last use gives the admin API its seconds left.
        self._tenants: dict[str, _Pins] = {}
        self._sizes = _Sizes()

    def _pins(self, key: str, create: bool = False) -> tuple[str, _Pins | None]:
        tenant = tenant_of(key)
        pins = self._tenants.get(tenant)
        if pins is None and create:
            pins = self._tenants[tenant] = _Pins(self.ttl, self._timer, lambda n: self._left(tenant, n))
        return tenant, pins

    def _left(self, tenant: str, n: int) -> None:
        self.expirations += n
        self._sizes.add(tenant, -n)

    def _store(self, key: str, pin: Pin) -> None:
        tenant, pins = self._pins(key, create=True)
        assert pins is not None
        if key not in pins:
            pins.expire()
            if self._sizes.total >= self.max_entries:
                self._evict()
            self._sizes.add(tenant, 1)
        pins[key] = (pin, self._timer())

    def _evict(self) -> None:
        """Make room: the least recently used pin of the largest tenant goes."""
        tenant = self._sizes.largest()
        pins = self._tenants[tenant]
        pins.expire()
        if self._sizes.total < self.max_entries:
            return  # expired pins made the room
        pins.popitem()
        self.evictions += 1
        self._sizes.add(tenant, -1)
        if not pins:
            del self._tenants[tenant]

    async def get(self, key: str) -> Pin | None:
        _, pins = self._pins(key)
        entry = pins.get(key) if pins is not None else None
        if entry is None:
            return None
        pin = entry[0]
        pin.last_used = self._clock()
        pins[key] = (pin, self._timer())  # restarts the TTL
        return pin

    async def put_if_absent(self, key: str, pin: Pin) -> Pin:
        _, pins = self._pins(key)
        entry = pins.get(key) if pins is not None else None
        if entry is not None:
            return entry[0]
        self._store(key, pin)
        return pin

    async def replace(self, key: str, pin: Pin) -> None:
        self._store(key, pin)

    async def peek(self, key: str) -> tuple[Pin, float] | None:
        _, pins = self._pins(key)
        entry = pins.get(key) if pins is not None else None
        if entry is None:
            return None
        pin, used = entry
        return pin, max(0.0, self.ttl - (self._timer() - used))

    async def delete(self, key: str) -> bool:
        tenant, pins = self._pins(key)
        if pins is None or pins.pop(key, None) is None:
            return False
        self._sizes.add(tenant, -1)
        return True

    async def size(self) -> int:
        return self.local_size()

    def local_size(self) -> int:
        """Live pins (synchronous: the metrics scrape reads it)."""
        for pins in list(self._tenants.values()):
            pins.expire()
        return self._sizes.total

    def tenant_size(self, tenant: str) -> int:
        """Pins held by one tenant (as `tenant_of` names it)."""
        return self._sizes.of(tenant)

    async def close(self) -> None:
        self._tenants.clear()
        self._sizes = _Sizes()


class _Sizes:
    """Pins per tenant, with the largest tenant found in O(1): tenants are kept in buckets by size.

    Sizes move by one at a time, so the largest size moves by at most one per
    change; no scan over tenants is ever needed, however many there are.
    """

    def __init__(self) -> None:
        self.total = 0
        self._size: dict[str, int] = {}
        self._by_size: dict[int, set[str]] = {}
        self._top = 0

    def of(self, tenant: str) -> int:
        return self._size.get(tenant, 0)

    def add(self, tenant: str, delta: int) -> None:
        old = self._size.get(tenant, 0)
        new = old + delta
        self.total += delta
        if old:
            bucket = self._by_size[old]
            bucket.discard(tenant)
            if not bucket:
                del self._by_size[old]
        if new > 0:
            self._size[tenant] = new
            self._by_size.setdefault(new, set()).add(tenant)
        else:
            self._size.pop(tenant, None)
        if new > self._top:
            self._top = new
        while self._top and self._top not in self._by_size:
            self._top -= 1

    def largest(self) -> str:
        return next(iter(self._by_size[self._top]))
