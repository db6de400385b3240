"""Odd but well-formed-looking input: each is a clear 400 on every surface, counted and logged like any other.

A role given as a list, an unpaired UTF-16 surrogate escape, JSON nested
hundreds of levels deep and a number longer than Python reads once made 500s
(or a provider call that failed and was failed over). The app runs in process;
respx stands in for the provider, and must never be called.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest
import respx

from gateway.app import create_app
from gateway.validation import MAX_DEPTH
from inprocess_helpers import (ANTHROPIC_MESSAGES_URL, LITELLM_NOISE, MINI, OPENAI_CHAT_URL, NoRouter,
                               anthropic_provider, make_config, openai_provider, run)

pytestmark = LITELLM_NOISE

SURFACES = ["/v1/chat/completions", "/v1/messages", "/v1/responses",
            "/routing/v1/chat/completions", "/routing/v1/messages", "/routing/v1/responses"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def body_for(path: str, text: str = '"hi"', extra: str = "", role: str = '"user"') -> bytes:
    """A valid request for `path` as raw JSON text, with `text` as the user's content and `extra` fields."""
    message = f'{{"role": {role}, "content": {text}}}'
    if path.endswith("/chat/completions"):
        raw = f'{{"model": "{MINI}", "messages": [{message}]{extra}}}'
    elif path.endswith("/messages"):
        raw = f'{{"model": "{MINI}", "max_tokens": 16, "messages": [{message}]{extra}}}'
    else:
        raw = f'{{"model": "{MINI}", "input": [{message}]{extra}}}'
    return raw.encode()


ODD = {
    "role as a list": (dict(role='["user"]'), "role"),
    "role as an object": (dict(role='{"name": "user"}'), "role"),
    "lone high surrogate": (dict(text='"before \\ud800 after"'), "unpaired UTF-16 surrogate (\\ud800)"),
    "lone low surrogate": (dict(text='"\\udc00"'), "unpaired UTF-16 surrogate (\\udc00)"),
    "surrogate in a field name": (dict(extra=', "metadata": {"\\ud83d": "x"}'), "a field name in metadata"),
    "nested 1,000 deep": (dict(extra=f', "metadata": {{"x": {nested(1000)}}}'), "too deeply"),
    "nested past the limit": (dict(extra=f', "metadata": {{"x": {nested(MAX_DEPTH)}}}'), f"{MAX_DEPTH} levels"),
    "a 5,000-digit number": (dict(extra=', "temperature": ' + "9" * 5000), "5000 digits"),
    "NaN": (dict(extra=', "temperature": NaN'), "NaN"),
}


class Recorded:
    """The app in process, with the gateway's request log captured."""

    def __init__(self) -> None:
        config = make_config([openai_provider(MINI, default=True), anthropic_provider()],
                             gateway={"openai_relay": False})
        self.app = create_app(config, router=NoRouter())

    def send(self, requests: list[tuple[str, bytes]]) -> tuple[list[httpx.Response], str, int]:
        """(responses, the /metrics text afterwards, provider calls made)."""

        async def go():
            # raise_app_exceptions=False: a 500 is answered as a server would, not raised into the test
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                with respx.mock(assert_all_called=False) as mock:
                    mock.post(OPENAI_CHAT_URL).mock(return_value=httpx.Response(500))
                    mock.post(ANTHROPIC_MESSAGES_URL).mock(return_value=httpx.Response(500))
                    out = [await client.post(path, content=raw, headers={"content-type": "application/json"})
                           for path, raw in requests]
                    metrics = (await client.get("/metrics")).text
                    return out, metrics, len(mock.calls)

        return run(go())


def error_message(response: httpx.Response) -> str:
    payload = response.json()
    if payload.get("type") == "error":  # Anthropic's shape
        return payload["error"]["message"]
    assert payload["error"]["type"] == "invalid_request_error"
    return payload["error"]["message"]


def counted(metrics: str, endpoint: str, status: str) -> float:
    pattern = rf'gateway_requests_total{{endpoint="{re.escape(endpoint)}",model="[^"]*",status="{status}"}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, metrics))


@pytest.mark.parametrize("kind", list(ODD))
def test_odd_input_is_a_400_on_every_surface_counted_logged_once_and_never_sent(kind, caplog):
    shape, says = ODD[kind]
    gateway = Recorded()
    requests = [(path, body_for(path, **shape)) for path in SURFACES]
    with caplog.at_level(logging.INFO, logger="gateway"):
        responses, metrics, provider_calls = gateway.send(requests)
    for (path, _), response in zip(requests, responses):
        assert response.status_code == 400, f"{path}: {response.status_code} {response.text[:200]}"
        assert says in error_message(response), f"{path}: {error_message(response)}"
        assert counted(metrics, path, "400") == 1, path
        assert counted(metrics, path, "500") == 0, path
    assert provider_calls == 0
    request_lines = [r for r in caplog.records if r.name == "gateway.request"]
    assert [r.fields["status"] for r in request_lines] == [400] * len(SURFACES)  # one line per request
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback logged for them


def test_surrogate_pairs_escaped_whole_and_nesting_within_the_limit_are_accepted():
    emoji = json.dumps("ok \U0001f600")  # ASCII-only encoders write "\ud83d\ude00"
    assert "\\ud83d\\ude00" in emoji
    gateway = Recorded()
    deep = f', "metadata": {{"x": {nested(MAX_DEPTH - 2)}}}'  # the body and metadata are two levels
    responses, _, _ = gateway.send([("/routing/v1/chat/completions", body_for("/v1/chat/completions", text=emoji)),
                                    ("/routing/v1/messages", body_for("/v1/messages", extra=deep)),
                                    ("/routing/v1/responses", body_for("/v1/responses", text='"\\\\ud800"'))])
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text[:200] for r in responses]


def test_an_unexpected_error_is_one_500_counted_and_logged_once_and_does_not_escape_to_the_server(caplog):
    gateway = Recorded()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the gateway")

    gateway.app.state.gateway.decider.decide = broken

    async def go():
        # raise_app_exceptions=True (the default): an exception leaving the app is what the server
        # logs a second time ("Exception in ASGI application") after the handler already answered.
        transport = httpx.ASGITransport(app=gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.post("/v1/messages", content=body_for("/v1/messages"))
            return response, (await client.get("/metrics")).text

    with caplog.at_level(logging.INFO, logger="gateway"):
        response, metrics = run(go())
    assert response.status_code == 500
    assert response.json()["type"] == "error"  # Anthropic's shape on /v1/messages
    assert "internal gateway error" in response.json()["error"]["message"]
    assert counted(metrics, "/v1/messages", "500") == 1
    assert [r.fields["status"] for r in caplog.records if r.name == "gateway.request"] == [500]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
