"""What a hostile or broken client may send a real `gateway up` process: header limits, slow headers, connections."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import RunningGateway, launch, stop

# Short header timeout and a small connection limit so the tests take seconds, not minutes; decisions only
# (no provider key or URL), so the gateway starts quickly.
CONFIG = """\
model_providers:
  - model: openai/gpt-4o-mini
    default: true
server:
  header_timeout: 1
  max_connections: 12
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gw = launch(CONFIG, tmp_path_factory.mktemp("limits"))
    yield gw
    stop(gw.proc)


def address(gw: RunningGateway) -> tuple[str, int]:
    url = urlsplit(gw.url)
    return url.hostname or "127.0.0.1", url.port or 80


def send_raw(gw: RunningGateway, head: bytes, timeout: float = 10) -> bytes:
    """Send `head` (a request line and headers) whole, then read what comes back until the server closes."""
    with socket.create_connection(address(gw), timeout=timeout) as sock:
        try:
            sock.sendall(head)
        except OSError:
            pass  # refused midway: the answer may still be readable
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def error_message(answer: bytes) -> str:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_ordinary_headers_are_served(gateway):
    headers = b"".join(b"X-Extra-%d: %s\r\n" % (i, b"v" * 100) for i in range(90))
    answer = send_raw(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n")
    assert status_of(answer) == 200


def test_a_64_mb_header_is_refused_with_431_without_being_read_into_memory(gateway):
    before = peak_rss_kib(gateway.proc.pid)
    answer = send_raw(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024 * 1024) + b"\r\n\r\n")
    assert status_of(answer) == 431, answer[:200]
    assert "exceed 65536 bytes" in error_message(answer)
    # Before the limit the whole line was buffered (peak RSS +63 MB); now at most a read past the limit is held.
    assert peak_rss_kib(gateway.proc.pid) - before < 16 * 1024
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_too_many_headers_a_long_header_line_and_a_long_url_are_refused(gateway):
    many = b"".join(b"X-H-%d: 1\r\n" % i for i in range(101))
    answer = send_raw(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(answer) == 431 and "more than 100 headers" in error_message(answer)

    answer = send_raw(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 9000 + b"\r\n\r\n")
    assert status_of(answer) == 431 and "'Cookie' exceeds 8192 bytes" in error_message(answer)

    answer = send_raw(gateway, b"GET /healthz?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 414


def slowloris(gw: RunningGateway, count: int, stop_after: float) -> list[tuple[float, bytes]]:
    """`count` connections each sending a header byte every 0.2 s; when and how each ended."""
    started = time.monotonic()
    socks = [socket.create_connection(address(gw), timeout=0.2) for _ in range(count)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    ended: dict[int, tuple[float, bytes]] = {}
    while len(ended) < count and time.monotonic() - started < stop_after:
        for i, sock in enumerate(socks):
            if i in ended:
                continue
            try:
                sock.sendall(b"a")
                answer = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                answer = b""
            ended[i] = (time.monotonic() - started, answer)
    for sock in socks:
        sock.close()
    return [ended.get(i, (float("inf"), b"")) for i in range(count)]


def test_slow_headers_are_answered_408_and_closed_after_the_header_timeout(gateway):
    idle = socket.create_connection(address(gateway), timeout=5)  # connects and never sends a byte
    ends = slowloris(gateway, 4, stop_after=8)
    assert all(when < 8 for when, _ in ends), ends  # before the timeout these stayed open for ever
    assert all(status_of(answer) == 408 for _, answer in ends), ends
    assert "did not arrive within 1s" in error_message(ends[0][1])
    assert idle.recv(100) == b""  # an idle connection is closed without an answer
    idle.close()


def test_normal_requests_are_served_while_slow_clients_wait_for_their_timeout(gateway):
    results: list[list[tuple[float, bytes]]] = []
    loris = threading.Thread(target=lambda: results.append(slowloris(gateway, 4, stop_after=8)))
    loris.start()
    time.sleep(0.3)
    try:
        assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
    finally:
        loris.join()


def test_past_the_connection_limit_requests_get_503_until_idle_connections_time_out(gateway):
    hogs = [socket.create_connection(address(gateway)) for _ in range(12)]
    try:
        time.sleep(0.2)
        refused = httpx.get(f"{gateway.url}/healthz", headers={"Connection": "close"}, timeout=5)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "connection_limit"
        assert "server.max_connections: 12" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "1"
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # the idle hogs are closed by the header timeout (1 s)
            if httpx.get(f"{gateway.url}/healthz", headers={"Connection": "close"}, timeout=5).status_code == 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("still refused after the idle connections should have timed out")
    finally:
        for sock in hogs:
            sock.close()
