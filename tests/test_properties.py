"""Property-based: whatever JSON and headers arrive, the gateway answers below 500 and stays healthy."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "wizard", "", None, 3])
contents = st.one_of(st.text(max_size=200), st.none(), st.integers(), st.lists(json_values, max_size=3),
                     st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=50)}), max_size=3))
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": contents}), max_size=4)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"messages": messages},
                          optional={"model": st.one_of(st.text(max_size=20), st.sampled_from(
                                        ["gpt-4o", "openai/gpt-4o-mini", "claude-sonnet-4-20250514"]), st.integers()),
                                    "stream": st.one_of(st.booleans(), st.text(max_size=3), st.none()),
                                    "temperature": json_values}),
)
# Header values the HTTP client can put on the wire (it sends ASCII); the HTTP
# parser itself rejects control characters with a plain 400 before the app runs.
# (HTTP trims surrounding whitespace from header values, so the client refuses it.)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=127), max_size=300).map(str.strip)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def client(gateway):
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


@pytest.mark.parametrize("path", ["/routing/v1/chat/completions", "/v1/chat/completions"])
@SETTINGS
@given(body=bodies, session=st.one_of(st.none(), header_text))
def test_arbitrary_json_and_session_headers_never_get_a_5xx(client, path, body, session):
    headers = {"content-type": "application/json"}
    if session is not None:
        headers["X-Session-Id"] = session
    r = client.post(path, content=json.dumps(body).encode(), headers=headers)
    assert r.status_code < 500, r.text
    if r.status_code >= 400 and r.headers.get("content-type") == "application/json":
        error = r.json()["error"]
        assert error["message"] and error["type"]
    elif r.status_code >= 400:
        assert r.status_code == 400  # refused by the HTTP parser (e.g. a control character in a header)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_get_a_5xx(client, raw):
    r = client.post("/routing/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text


def test_gateway_is_healthy_after_the_properties(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ok = client.post("/routing/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert ok.status_code == 200
