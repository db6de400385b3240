"""Disposable Redis servers for tests: one plain server, a Sentinel, a Cluster, each on spare loopback ports.

Every process started here writes nothing to disk (`--save "" --appendonly no`)
and is stopped by the context manager that started it, whatever the test did.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import redis

from conftest import free_port

NO_DISK = ("--save", "", "--appendonly", "no")
HAVE_REDIS_SERVER = shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def spare_ports(n: int) -> list[int]:
    """`n` distinct free ports: all held open while choosing, so none is handed out twice."""
    held = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, what: str, timeout: float = 15.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _start(args: list[str], workdir: Path, name: str) -> subprocess.Popen:
    log = (workdir / f"{name}.log").open("w")
    return subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


@contextlib.contextmanager
def redis_server(workdir: Path, *extra: str) -> Iterator[int]:
    """One plain redis-server on a spare port; yields the port."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = _start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), *NO_DISK,
                   *extra], workdir, f"redis-{port}")
    try:
        wait_until(lambda: port_open(port), f"redis-server on {port}")
        yield port
    finally:
        _stop([proc])


@dataclass
class Cluster:
    """A running Redis Cluster: `ports` of every node, `procs` by port."""

    ports: list[int]
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def primaries(self) -> list[int]:
        return [p for p in self.ports if self.procs[p].poll() is None and self.role(p) == "master"]

    def role(self, port: int) -> str:
        return self.client(port).execute_command("ROLE")[0]

    def primary_of_key(self, key: str) -> int:
        """The port of the live primary serving `key`'s slot."""
        any_live = next(p for p in self.ports if self.procs[p].poll() is None)
        slot = self.client(any_live).execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, primary, *_ in self.client(any_live).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise LookupError(f"no node serves slot {slot}")

    def replicas_in_sync(self) -> bool:
        links = [self.client(p).info("replication") for p in self.ports if self.procs[p].poll() is None]
        return all(i.get("master_link_status") == "up" for i in links if i["role"] == "slave")

    def info(self, port: int) -> dict[str, str]:
        text = self.client(port).execute_command("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def kill(self, port: int) -> None:
        self.procs[port].kill()
        self.procs[port].wait(timeout=5)


@contextlib.contextmanager
def redis_cluster(workdir: Path, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> Iterator[Cluster]:
    """`primaries` primaries with `replicas` replicas each, created with `redis-cli --cluster create`."""
    workdir.mkdir(parents=True, exist_ok=True)
    nodes = primaries * (1 + replicas)
    chosen = spare_ports(2 * nodes)
    ports, bus_ports = chosen[:nodes], dict(zip(chosen[:nodes], chosen[nodes:]))
    cluster = Cluster(ports)
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            cluster.procs[port] = _start(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir), *NO_DISK,
                 # the bus port would default to port + 10000, past 65535 for a high spare port
                 "--cluster-enabled", "yes", "--cluster-port", str(bus_ports[port]), "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(node_timeout_ms),
                 # replicas sync at once (not after the default 5 s delay) and may always take over
                 "--repl-diskless-sync-delay", "0", "--cluster-replica-validity-factor", "0"], node_dir, "redis")
        for port in ports:
            wait_until(lambda: port_open(port), f"cluster node on {port}")
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")

        def settled() -> bool:
            infos = [cluster.info(p) for p in ports]
            return all(i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == len(ports) for i in infos)

        wait_until(settled, "the cluster to agree on its state", every=0.1)
        wait_until(lambda: len(cluster.primaries()) == primaries, "replicas to attach", every=0.1)
        wait_until(cluster.replicas_in_sync, "replicas to finish their first sync", every=0.1)
        yield cluster
    finally:
        _stop(list(cluster.procs.values()))


@dataclass
class Sentinel:
    """A primary, one replica and one sentinel watching them as `service`."""

    primary: int
    replica: int
    sentinel: int
    service: str


@contextlib.contextmanager
def redis_sentinel(workdir: Path, service: str = "pins") -> Iterator[Sentinel]:
    """A primary, a replica of it and a `redis-server --sentinel` that monitors them."""
    workdir.mkdir(parents=True, exist_ok=True)
    primary, replica, sentinel = spare_ports(3)
    procs: list[subprocess.Popen] = []
    try:
        for port, extra in ((primary, ("--repl-diskless-sync-delay", "0")),
                            (replica, ("--replicaof", "127.0.0.1", str(primary)))):
            node_dir = workdir / str(port)
            node_dir.mkdir()
            procs.append(_start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
                                 *NO_DISK, *extra], node_dir, "redis"))
        conf = workdir / "sentinel.conf"  # sentinel rewrites its config file, so it must be writable
        conf.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {workdir}\n"
                        f"sentinel monitor {service} 127.0.0.1 {primary} 1\n"
                        f"sentinel down-after-milliseconds {service} 1000\n"
                        f"sentinel failover-timeout {service} 5000\n")
        procs.append(_start(["redis-server", str(conf), "--sentinel"], workdir, "sentinel"))
        wait_until(lambda: port_open(sentinel), "redis sentinel")
        watcher = redis.Redis(port=sentinel, decode_responses=True, socket_timeout=2)
        wait_until(lambda: watcher.sentinel_master(service)["num-slaves"] >= 1, "sentinel to see the replica",
                   every=0.1)
        yield Sentinel(primary, replica, sentinel, service)
    finally:
        _stop(procs)
