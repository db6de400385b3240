"""Session pin stores: where a session's model lives between requests.

Two stores share one interface: `MemoryPinStore` (in process, the default) and
`RedisPinStore` (in `redis_pins.py`, shared by workers and replicas). Both slide
the TTL on every read and keep the first pin written for a session.
"""

from __future__ import annotations

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
    """A TTLCache that counts what leaves it: `evictions` (LRU, when full) and `expirations` (TTL)."""

    def __init__(self, maxsize: int, ttl: float, timer: Callable[[], float]) -> None:
        super().__init__(maxsize, ttl, timer=timer)
        self.evictions = 0
        self.expirations = 0

    def popitem(self) -> tuple[str, Any]:
        self.evictions += 1
        return super().popitem()

    def expire(self, time: float | None = None) -> list[tuple[str, Any]]:
        expired = super().expire(time)
        self.expirations += len(expired)
        return expired


class MemoryPinStore:
    """In-process pins: at most `max_entries`, each living `ttl` seconds from its last use.

    A cachetools TTLCache holds them: it evicts the least recently used pin
    when full and drops pins whose TTL ran out. Every read writes the pin back,
    which restarts its TTL (the sliding TTL an agent loop needs) and marks it
    recently used.
    """

    def __init__(self, ttl: int, max_entries: int, timer: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._timer = timer  # for expiry: monotonic, immune to wall-clock jumps
        self._clock = clock  # for the created/last_used shown to people
        # key -> (pin, last use on `timer`); the last use gives the admin API its seconds left.
        self._pins = _Pins(max_entries, ttl, timer)

    @property
    def evictions(self) -> int:
        return self._pins.evictions

    @property
    def expirations(self) -> int:
        return self._pins.expirations

    async def get(self, key: str) -> Pin | None:
        entry = self._pins.get(key)
        if entry is None:
            return None
        pin = entry[0]
        pin.last_used = self._clock()
        self._pins[key] = (pin, self._timer())  # restarts the TTL
        return pin

    async def put_if_absent(self, key: str, pin: Pin) -> Pin:
        entry = self._pins.get(key)
        if entry is not None:
            return entry[0]
        self._pins[key] = (pin, self._timer())
        return pin

    async def replace(self, key: str, pin: Pin) -> None:
        self._pins[key] = (pin, self._timer())

    async def peek(self, key: str) -> tuple[Pin, float] | None:
        entry = self._pins.get(key)
        if entry is None:
            return None
        pin, used = entry
        return pin, max(0.0, self.ttl - (self._timer() - used))

    async def delete(self, key: str) -> bool:
        return self._pins.pop(key, None) is not None

    async def size(self) -> int:
        return self.local_size()

    def local_size(self) -> int:
        """Live pins (synchronous: the metrics scrape reads it)."""
        self._pins.expire()
        return len(self._pins)

    async def close(self) -> None:
        self._pins.clear()
