"""The pin store on a real Redis Cluster and behind a real Sentinel, including a failover mid-traffic.

Each test starts its own disposable Redis processes on spare loopback ports
(`tests/redis_servers.py`) and stops them at the end.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from conftest import CODE_PROMPT, REASONING_PROMPT, free_port
from redis_servers import HAVE_REDIS_SERVER, redis_cluster, redis_sentinel
from test_redis_e2e import decide, decisions_only_config

pytestmark = pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="needs redis-server and redis-cli to start a cluster")


class Traffic:
    """Sessions served without pause from a background thread: each session's first request, then follow-ups."""

    def __init__(self, url: str, sessions: int) -> None:
        self.url = url
        self.sessions = [str(uuid.uuid4()) for _ in range(sessions)]
        self.models: dict[str, str] = {}
        self.failures: list[str] = []
        self.unpinned = 0  # follow-ups served without their pin (fail open)
        self.unpinned_at: list[float] = []  # when each was served, for the length of the unpinned spell
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Traffic":
        for sid in self.sessions:
            answer = decide(self.url, CODE_PROMPT, sid).json()
            assert answer["pinned"] is False
            self.models[sid] = answer["model"]
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                for sid in self.sessions:
                    try:
                        r = client.post(f"{self.url}/routing/v1/chat/completions", headers={"X-Session-Id": sid},
                                        json={"messages": [{"role": "user", "content": REASONING_PROMPT}]})
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{sid}: {exc!r}")
                        continue
                    self.served += 1
                    if r.status_code != 200:
                        self.failures.append(f"{sid}: {r.status_code} {r.text}")
                    elif not r.json()["pinned"]:
                        self.unpinned += 1
                        self.unpinned_at.append(time.monotonic())

    def spell(self) -> float:
        """Seconds from the first follow-up served unpinned to the last."""
        return self.unpinned_at[-1] - self.unpinned_at[0] if self.unpinned_at else 0.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_for(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def all_pinned(url: str, sessions: list[str]) -> bool:
    return all(decide(url, REASONING_PROMPT, sid).json()["pinned"] for sid in sessions)


def test_pins_on_a_redis_cluster_survive_a_primary_failing_mid_traffic(start_gateway, tmp_path):
    with redis_cluster(tmp_path / "cluster") as cluster:
        seeds = ",".join(f"127.0.0.1:{p}" for p in cluster.ports[:2])
        gw = start_gateway(decisions_only_config(f"redis+cluster://{seeds}"))
        traffic = Traffic(gw.url, sessions=12).start()
        # every session's keys sit on one slot, found by its hash tag
        key = f"pgw:v1:pin:{{{traffic.sessions[0]}}}"
        victim = cluster.primary_of_key(key)
        assert cluster.client(victim).get(key) is not None
        try:
            wait_for(lambda: traffic.served >= 24, "traffic before the failure")
            cluster.kill(victim)  # a crash, not a handover: its replica takes over after the node timeout
            wait_for(lambda: victim not in cluster.primaries() and cluster.primary_of_key(key) != victim,
                     "a replica to be promoted")
            # pins resume once the store's next probe of each node finds the new layout (a second or so)
            wait_for(lambda: all_pinned(gw.url, traffic.sessions), "pins to resume on every node")
            promoted = traffic.served
            wait_for(lambda: traffic.served >= promoted + 24, "traffic after the failover")
        finally:
            traffic.stop()
        print(f"cluster failover: {traffic.served} requests, {len(traffic.failures)} failed, "
              f"{traffic.unpinned} served unpinned, over {traffic.spell():.1f} s from the crash")
        assert traffic.failures == []
        # after the failover every session is served pinned again, by the model it started with
        for sid in traffic.sessions:
            answer = decide(gw.url, REASONING_PROMPT, sid).json()
            assert (answer["pinned"], answer["model"]) == (True, traffic.models[sid])
        assert httpx.get(f"{gw.url}/readyz").status_code == 200


def test_pins_behind_redis_sentinel_follow_a_failover(start_gateway, tmp_path):
    import redis

    with redis_sentinel(tmp_path / "sentinel") as sentinel:
        gw = start_gateway(decisions_only_config(f"redis+sentinel://127.0.0.1:{sentinel.sentinel}/{sentinel.service}/0"))
        traffic = Traffic(gw.url, sessions=6).start()
        key = f"pgw:v1:pin:{{{traffic.sessions[0]}}}"
        assert redis.Redis(port=sentinel.primary).get(key) is not None  # written to the primary Sentinel named
        watcher = redis.Redis(port=sentinel.sentinel, decode_responses=True)
        try:
            wait_for(lambda: traffic.served >= 12, "traffic before the failover")
            wait_for(lambda: redis.Redis(port=sentinel.replica).info("replication")["master_link_status"] == "up",
                     "the replica to be in sync")
            watcher.execute_command("SENTINEL", "FAILOVER", sentinel.service)
            wait_for(lambda: int(watcher.sentinel_master(sentinel.service)["port"]) == sentinel.replica,
                     "Sentinel to promote the replica")
            wait_for(lambda: all_pinned(gw.url, traffic.sessions), "pins to resume on the promoted replica")
            promoted = traffic.served
            wait_for(lambda: traffic.served >= promoted + 12, "traffic after the failover")
        finally:
            traffic.stop()
        print(f"sentinel failover: {traffic.served} requests, {len(traffic.failures)} failed, "
              f"{traffic.unpinned} served unpinned, over {traffic.spell():.1f} s")
        assert traffic.failures == []
        for sid in traffic.sessions:
            answer = decide(gw.url, REASONING_PROMPT, sid).json()
            assert (answer["pinned"], answer["model"]) == (True, traffic.models[sid])
        new = decide(gw.url, CODE_PROMPT, str(uuid.uuid4())).json()
        assert new["pinned"] is False  # and new sessions are written to the promoted primary


def test_gateway_check_describes_a_cluster_url_without_its_password(tmp_path):
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(decisions_only_config(f"redis+cluster://:s3cret@127.0.0.1:{port},127.0.0.1:{port + 1}"))
    check = subprocess.run([sys.executable, "-m", "gateway", "check", str(config)], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr
    assert f"pins: redis cluster, seed nodes 127.0.0.1:{port},127.0.0.1:{port + 1}" in check.stdout
    assert "s3cret" not in check.stdout + check.stderr


def test_pin_store_urls_are_read_or_refused_with_the_forms_that_work():
    import yaml

    from gateway.config import ConfigError, parse_config
    from gateway.redis_pins import parse_url

    sentinel = parse_url("redis+sentinel://u:p%40ss@10.0.0.1,10.0.0.2:26380/pins/2")
    assert (sentinel.mode, sentinel.hosts, sentinel.service, sentinel.db) == (
        "sentinel", (("10.0.0.1", 26379), ("10.0.0.2", 26380)), "pins", 2)
    assert (sentinel.username, sentinel.password) == ("u", "p@ss")
    assert sentinel.describe() == "redis primary 'pins' found through sentinels 10.0.0.1:26379,10.0.0.2:26380, db 2"
    assert parse_url("rediss+cluster://[::1]:7000").hosts == (("::1", 7000),)
    assert parse_url("rediss+cluster://[::1]:7000").tls is True
    assert parse_url("redis://:pw@127.0.0.1:6379/3").describe() == "redis at redis://***@127.0.0.1:6379/3"

    for url, says in (("http://127.0.0.1:6379", "is not a Redis URL"),
                      ("redis+sentinel://127.0.0.1:26379", "must name the primary Sentinel watches"),
                      ("redis+cluster://127.0.0.1:7000/3", "Redis Cluster has only database 0"),
                      ("redis+cluster://127.0.0.1:port", "is not host:port"),
                      ("redis+cluster://:pw@/", "names no host")):
        with pytest.raises(ConfigError) as refused:
            parse_config(yaml.safe_load(decisions_only_config(url)), env={})
        assert "routing.session_cache.url" in str(refused.value) and says in str(refused.value), (url, refused.value)
        assert ":pw@" not in str(refused.value)
