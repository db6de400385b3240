"""SIGTERM drains a real `gateway up` process: streams in flight finish, or are cut and counted after the drain time."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import SMALL_TALK, FakeProvider, fake_provider_process, provider_config

CHUNKS, CHUNK_DELAY_MS = 8, 250  # each stream takes about 2 s after its first chunk


@pytest.fixture(scope="module")
def slow_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProvider]:
    with fake_provider_process(tmp_path_factory.mktemp("slow"), "--chunks", str(CHUNKS),
                               "--chunk-delay-ms", str(CHUNK_DELAY_MS)) as provider:
        yield provider


def stream_lines(url: str, started: threading.Event, lines: list[str], errors: list[Exception]) -> None:
    """Read one streamed chat answer line by line; `started` is set at its first content chunk."""
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": SMALL_TALK}]}
    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines.append(line)
                    started.set()
    except httpx.HTTPError as exc:
        errors.append(exc)
    finally:
        started.set()


def refused(url: str) -> bool:
    """Whether a new request to `url` is refused, within a second (the signal may take a moment)."""
    for _ in range(20):
        try:
            httpx.get(f"{url}/healthz", timeout=2)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            return True
        threading.Event().wait(0.05)
    return False


def sigterm_mid_stream(start_gateway, slow_provider: FakeProvider, args: tuple[str, ...]
                       ) -> tuple[int, list[str], list[Exception], str, bool]:
    """Start a stream, SIGTERM the gateway; (exit status, stream lines, client errors, log, new requests refused)."""
    gw = start_gateway(provider_config(slow_provider.url), args=args)
    started, lines, errors = threading.Event(), [], []
    reader = threading.Thread(target=stream_lines, args=(gw.url, started, lines, errors))
    reader.start()
    assert started.wait(15)
    gw.proc.send_signal(signal.SIGTERM)
    try:
        refusing = refused(gw.url) and gw.proc.poll() is None
        code = gw.proc.wait(timeout=30)
    finally:
        reader.join(timeout=30)
    return code, lines, errors, gw.output(), refusing


def test_sigterm_lets_a_running_stream_finish_and_exits_0(start_gateway, slow_provider):
    code, lines, errors, output, refusing = sigterm_mid_stream(start_gateway, slow_provider,
                                                               ("--drain-timeout", "20"))
    assert refusing  # no new connections while the stream drains
    assert errors == [] and lines[-1] == "data: [DONE]"  # before the drain, the stream was cut at SIGTERM
    content = [json.loads(line[6:]) for line in lines[:-1]]
    assert sum(1 for c in content if c["choices"] and c["choices"][0]["delta"].get("content")) == CHUNKS
    assert code == 0, output
    assert "drained: every running request finished" in output


def test_a_stream_still_running_after_the_drain_timeout_is_cut_and_the_exit_status_says_so(start_gateway,
                                                                                          slow_provider):
    code, lines, errors, output, _ = sigterm_mid_stream(start_gateway, slow_provider, ("--drain-timeout", "0.5"))
    assert "data: [DONE]" not in lines  # cut midway: the client sees the stream end early
    assert code == 3, output
    assert "drain time (0.5s) ran out: cut 1 request(s) or stream(s) still running" in output
    assert "Traceback" not in output
