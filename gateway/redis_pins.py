"""Pins in Redis, shared by every worker and replica of the gateway.

Redis may be one server (`redis://`, `rediss://`, `unix://`), a primary found
through Sentinel (`redis+sentinel://`) or a Redis Cluster (`redis+cluster://`);
`parse_url` reads all three. Keys are `pgw:v1:pin:{<session key>}`: the braces
are a Cluster hash tag, so whatever one session ever stores lands on one slot.
Values are a small JSON object. The first writer of a session wins atomically
(SET NX) and every read slides the TTL (GETEX).

Timing, so a pin lookup never holds a request up for long: a call waits at most
OP_TIMEOUT for one of MAX_CONNECTIONS connection slots (a busy pool is a wait,
and running out of that wait fails only this call open, it is not an outage),
and at most OP_TIMEOUT for Redis's answer. A timeout is not retried: a paused
or overloaded Redis would only be asked again at the same cost. Only a pooled
connection found dropped (an idle timeout, a proxy, a NAT) is retried once on a
fresh one. After a failure Redis is skipped for RETRY_AFTER; then one request
probes it while the others keep routing without pins. An outage is logged once
when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from .pins import Pin

log = logging.getLogger("gateway.pins.redis")

KEY_PREFIX = "pgw:v1:pin:"
OP_TIMEOUT = 0.25  # seconds: the longest wait for a free connection, and for Redis's answer
CALL_LIMIT = 2 * OP_TIMEOUT  # hard bound on one Cluster call: a layout refresh or redirect, and the answer
RETRY_AFTER = 1.0  # seconds to skip Redis after a failure before one request probes it again
MAX_CONNECTIONS = 100  # Redis calls in flight at once per gateway process (and connections per pool)
SCHEMES = {"redis": "server", "rediss": "server", "unix": "server",
           "redis+sentinel": "sentinel", "rediss+sentinel": "sentinel",
           "redis+cluster": "cluster", "rediss+cluster": "cluster"}
URL_FORMS = ("redis://[[user]:password@]host:port/db, "
             "redis+sentinel://[[user]:password@]host:26379[,host:26379...]/service_name[/db], "
             "redis+cluster://[[user]:password@]host:port[,host:port...] (rediss+… for TLS)")


class PinStoreUnavailable(Exception):
    """Redis could not be reached; the caller serves the request without a pin."""


class PinStoreBusy(PinStoreUnavailable):
    """Every connection stayed busy for the whole wait: this call fails open, Redis is not marked down."""


@dataclass(frozen=True)
class RedisTarget:
    """Where the pins live, read from `routing.session_cache.url`."""

    mode: str  # server, sentinel or cluster
    url: str
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels, or the cluster's seed nodes
    service: str | None = None  # the primary's name in Sentinel
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def describe(self) -> str:
        """One line for `gateway check` and the logs, without the password."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        if self.mode == "sentinel":
            return f"redis primary {self.service!r} found through sentinels {hosts}, db {self.db}"
        if self.mode == "cluster":
            return f"redis cluster, seed nodes {hosts}"
        return f"redis at {safe_url(self.url)}"


def parse_url(url: str) -> RedisTarget:
    """Read a pin store URL; ValueError saying what is wrong and which forms work."""
    scheme, sep, rest = url.partition("://")
    mode = SCHEMES.get(scheme.lower()) if sep else None
    if mode is None:
        raise ValueError(f"{safe_url(url)!r} is not a Redis URL; use one of: {URL_FORMS}")
    if mode == "server":
        return RedisTarget("server", url)
    userinfo, _, location = rest.rpartition("@")
    netloc, _, path = location.partition("/")
    path = path.split("?", 1)[0].strip("/")
    default_port = 26379 if mode == "sentinel" else 6379
    hosts = tuple(_host_port(item, default_port, url) for item in netloc.split(",") if item)
    if not hosts:
        raise ValueError(f"{safe_url(url)!r} names no host; e.g. {scheme}://127.0.0.1:{default_port}")
    username, password = _credentials(userinfo)
    tls = scheme.lower().startswith("rediss")
    parts = [p for p in path.split("/") if p]
    if mode == "sentinel":
        if not parts or len(parts) > 2:
            raise ValueError(f"{safe_url(url)!r} must name the primary Sentinel watches, with an optional db: "
                             f"{scheme}://host:26379,host:26379/service_name[/db]")
        return RedisTarget("sentinel", url, hosts, parts[0], _db(parts[1] if len(parts) > 1 else "0", url),
                           username, password, tls)
    if parts and parts != ["0"]:
        raise ValueError(f"{safe_url(url)!r}: Redis Cluster has only database 0; remove the /{'/'.join(parts)}")
    return RedisTarget("cluster", url, hosts, None, 0, username, password, tls)


def _host_port(item: str, default_port: int, url: str) -> tuple[str, int]:
    if item.startswith("["):  # an IPv6 address: [::1]:6379
        host, _, tail = item[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
        raise ValueError(f"{safe_url(url)!r}: {item!r} is not host:port")
    return host, int(port) if port else default_port


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, sep, password = userinfo.partition(":")
    if not sep:  # redis://secret@host: the password alone, as redis-py reads it
        return None, unquote(user)
    return unquote(user) or None, unquote(password)


def _db(text: str, url: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{safe_url(url)!r}: the database must be a number, got {text!r}")
    return int(text)


def connect(target: RedisTarget) -> Any:
    """A redis.asyncio client for `target` with the gateway's timeouts and retry rule."""
    common: dict[str, Any] = {
        "socket_timeout": OP_TIMEOUT, "socket_connect_timeout": OP_TIMEOUT, "decode_responses": True,
        "max_connections": MAX_CONNECTIONS,
        # Retry once on a dropped connection only; a timeout is not retried (see the module docstring).
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if target.mode == "server":
        return aioredis.Redis.from_url(target.url, health_check_interval=30, **common)
    auth = {"username": target.username, "password": target.password}
    if target.mode == "sentinel":
        sentinels = Sentinel(list(target.hosts), sentinel_kwargs={
            "socket_timeout": OP_TIMEOUT, "socket_connect_timeout": OP_TIMEOUT, "ssl": target.tls})
        return sentinels.master_for(target.service, db=target.db, ssl=target.tls, health_check_interval=30,
                                    **auth, **common)
    # In a cluster a retry may follow a moved slot to its new primary, so it also covers timeouts there.
    common["retry"] = Retry(NoBackoff(), 1)
    # Partial coverage is accepted: while one primary fails over, the others' slots keep working.
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.hosts], ssl=target.tls,
                        require_full_coverage=False, **auth, **common)


def pin_key(key: str) -> str:
    """The Redis key of a session: hash-tagged, so one session's keys share a cluster slot."""
    return f"{KEY_PREFIX}{{{key}}}"


def legacy_key(key: str) -> str:
    """The key before hash tags; still read outside Cluster so pins survive an upgrade."""
    return KEY_PREFIX + key


@dataclass
class _Health:
    """What the store knows of one Redis node's outage."""

    down_since: float | None = None
    next_try: float = 0.0  # when one request may probe it again
    probing: bool = False


def _node_label(node: str) -> str:
    return f" node {node}" if node else ""


class RedisPinStore:
    """Pins shared through Redis, first writer wins, TTL sliding on every read."""

    def __init__(self, url: str, ttl: int, max_entries: int | None = None) -> None:
        self.ttl = ttl
        self.url = url
        self.target = parse_url(url)
        # max_entries is not enforced per key in Redis: pins expire by TTL, and
        # Redis's own maxmemory policy bounds memory (see README).
        self.max_entries = max_entries
        self._redis = connect(self.target)
        self._legacy = self.target.mode != "cluster"  # a cluster store starts with hash-tagged keys only
        # The bounded wait for a connection: redis-py's pools either raise at once when full or
        # (Sentinel's, a cluster's per-node pools) cannot wait, so the gateway holds the slots itself.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        # Outage state per node: in a Cluster one failed primary leaves the others' sessions pinned.
        self._health: dict[str, _Health] = {}

    async def _call(self, command: str, *args: Any) -> Any:
        """Run one Redis command, failing fast while an outage is known; one probe at a time after it."""
        node = self._node_of(args)
        health = self._health.setdefault(node, _Health())
        probe = False
        if health.down_since is not None:
            if time.monotonic() < health.next_try or health.probing:
                raise PinStoreUnavailable("redis is unreachable (retrying shortly)")
            health.probing = probe = True
        try:
            result = await self._bounded(command, *args)
        except (RedisError, RedisClusterException, OSError, asyncio.TimeoutError, TimeoutError) as exc:
            self._failed(health, node, exc)
            raise PinStoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
        finally:
            if probe:
                health.probing = False
        if health.down_since is not None:
            log.warning("redis pin store%s back after %.1fs; pins resume", _node_label(node),
                        time.monotonic() - health.down_since)
            health.down_since = None
        return result

    def _node_of(self, args: tuple[Any, ...]) -> str:
        """Whose health governs a call: the key's primary in a Cluster, else the one server ("")."""
        if self.target.mode != "cluster" or not args:
            return ""
        try:
            node = self._redis.get_node_from_key(args[0])
        except Exception:  # the slots are not known yet (before the first call) or not covered
            return ""
        return node.name if node is not None else ""

    async def _bounded(self, command: str, *args: Any) -> Any:
        await self._take_slot()
        if self.target.mode != "cluster":
            try:  # socket timeouts bound it: OP_TIMEOUT to connect, OP_TIMEOUT for the answer
                return await getattr(self._redis, command)(*args)
            finally:
                self._slots.release()
        # A Cluster call may follow a moved slot or refresh the layout first, so it gets a hard
        # limit. It runs as its own task, waited for rather than cancelled at the limit:
        # cancelling inside redis-py's Cluster client mid-redirect can leave it on a stale slot map.
        call = asyncio.ensure_future(getattr(self._redis, command)(*args))
        call.add_done_callback(self._finished)
        done, _ = await asyncio.wait((call,), timeout=CALL_LIMIT)
        if not done:
            raise TimeoutError(f"no answer within {CALL_LIMIT * 1000:.0f} ms")
        return call.result()

    async def _take_slot(self) -> None:
        """One of MAX_CONNECTIONS slots, waiting at most OP_TIMEOUT; PinStoreBusy if none frees up."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken at once, no timer to set up
            return
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                await self._slots.acquire()
        except (asyncio.TimeoutError, TimeoutError):
            log.debug("all %d redis connections busy for %.0f ms; this request goes unpinned",
                      MAX_CONNECTIONS, OP_TIMEOUT * 1000)
            raise PinStoreBusy("all redis connections stayed busy") from None

    def _finished(self, call: asyncio.Future) -> None:
        """The connection slot frees when the call really ends, even after its caller gave up on it."""
        self._slots.release()
        if not call.cancelled():
            call.exception()  # a failure after the caller gave up was already handled as a timeout

    def _failed(self, health: _Health, node: str, exc: BaseException) -> None:
        now = time.monotonic()
        if health.down_since is None:
            health.down_since = now
            log.warning("redis pin store (%s)%s unreachable (%s); routing without pins until it returns",
                        self.target.describe(), _node_label(node), type(exc).__name__)
        health.next_try = now + RETRY_AFTER

    async def get(self, key: str) -> Pin | None:
        raw = await self._call("getex", pin_key(key), self.ttl)
        if raw is None and self._legacy:
            raw = await self._call("getex", legacy_key(key), self.ttl)
        return _decode(raw)

    async def put_if_absent(self, key: str, pin: Pin) -> Pin:
        if await self._call("set", pin_key(key), _encode(pin), self.ttl, None, True):  # EX ttl, NX
            return pin
        existing = await self.get(key)
        return existing if existing is not None else pin

    async def replace(self, key: str, pin: Pin) -> None:
        await self._call("set", pin_key(key), _encode(pin), self.ttl)

    async def peek(self, key: str) -> tuple[Pin, float] | None:
        """The pin and its seconds left, without refreshing its TTL."""
        name = pin_key(key)
        raw = await self._call("get", name)
        if raw is None and self._legacy:
            name = legacy_key(key)
            raw = await self._call("get", name)
        pin = _decode(raw)
        if pin is None:
            return None
        left_ms = await self._call("pttl", name)
        left = max(0.0, left_ms / 1000) if left_ms and left_ms > 0 else 0.0
        pin.last_used = time.time() - (self.ttl - left)
        return pin, left

    async def delete(self, key: str) -> bool:
        names = (pin_key(key), legacy_key(key)) if self._legacy else (pin_key(key),)
        return bool(await self._call("delete", *names))

    async def ping(self) -> str:
        """One PING within the usual bounds, for /readyz: where the pins live, or PinStoreUnavailable saying so."""
        try:
            await self._call("ping")
        except PinStoreUnavailable as exc:
            raise PinStoreUnavailable(f"the pin store ({self.target.describe()}) did not answer a PING: {exc}") from None
        return self.target.describe()

    async def size(self) -> int:
        """Live pins, by walking every key: slow with many pins, so no health probe or scrape calls it."""
        count = 0
        async for _ in self._redis.scan_iter(match=KEY_PREFIX + "*", count=1000):
            count += 1
        return count

    async def close(self) -> None:
        await self._redis.aclose()


def _encode(pin: Pin) -> str:
    return json.dumps({"model": pin.model, "route": pin.route, "created": pin.created})


def _decode(raw: str | None) -> Pin | None:
    """The pin stored as JSON; None when absent or not ours to read (the session then routes afresh)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Pin(data["model"], data.get("route"), data.get("created", 0.0), time.time())
    except (ValueError, TypeError, KeyError):
        return None


def safe_url(url: str) -> str:
    """The URL without a password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
