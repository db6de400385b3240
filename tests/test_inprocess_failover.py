"""The failover loop (upstream/failover.Forwarder) over a scripted in-process Upstream.

Each provider's outcomes are scripted (fail N times, then answer); the tests
check which providers were called in which order, how many attempts were
counted, who answered, and what error comes out when nobody does.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from gateway.api.chat import ChatWire
from gateway.api.messages import MessagesWire
from gateway.errors import (UpstreamError, upstream_failure, upstream_timeout, upstream_unreachable)
from gateway.metrics import Metrics
from gateway.upstream import failover
from gateway.upstream.failover import Forwarder
from inprocess_helpers import (CLAUDE, GPT4O, MINI, ScriptedUpstream, anthropic_provider, fails, make_config, ok,
                               openai_provider, run)

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def status(code: int):
    return fails(lambda model: upstream_failure(model, code, f"status {code} from the script"))


TIMEOUT = fails(lambda model: upstream_timeout(model, 5))
UNREACHABLE = fails(lambda model: upstream_unreachable(model, "http://provider.test", "ConnectError"))


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Backoff sleeps the loop asked for (recorded, not slept, so the tests stay fast)."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(failover, "asyncio", SimpleNamespace(sleep=sleep, timeout=asyncio.timeout))
    return asked


def config(max_retries: int = 2, mini: dict | None = None, gpt4o: dict | None = None, claude: dict | None = None,
           env: dict | None = None):
    """gpt-4o-mini is the default model; gpt-4o and Claude are the others."""
    return make_config([openai_provider(MINI, default=True, **(mini or {})), openai_provider(GPT4O, **(gpt4o or {})),
                        anthropic_provider(**(claude or {}))], max_retries=max_retries, env=env)


def send(cfg, upstream: ScriptedUpstream, model: str, wire=None, metrics=None):
    forwarder = Forwarder(cfg, metrics=metrics, upstreams=[upstream])
    return run(forwarder.send(cfg.find(model), wire or ChatWire(), BODY))


def send_error(cfg, upstream: ScriptedUpstream, model: str) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        send(cfg, upstream, model)
    return caught.value


def test_transient_failures_are_retried_on_the_same_provider_until_it_answers(sleeps):
    upstream = ScriptedUpstream({CLAUDE: [status(500), status(503), ok("third time")]})
    answer = send(config(max_retries=2), upstream, CLAUDE)
    assert upstream.calls == [CLAUDE] * 3
    assert answer.provider.model == CLAUDE
    assert answer.attempts == 3
    assert json.loads(answer.body)["text"] == "third time"


def test_retries_stop_at_max_retries_then_the_default_model_answers(sleeps):
    upstream = ScriptedUpstream({CLAUDE: [status(500)], MINI: [ok("from the default")]})
    answer = send(config(max_retries=2), upstream, CLAUDE)
    assert upstream.calls == [CLAUDE] * 3 + [MINI]
    assert answer.provider.model == MINI  # the answering provider is reported, not the one decided
    assert answer.attempts == 4


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_each_provider_gets_max_retries_plus_one_attempts(sleeps, max_retries):
    upstream = ScriptedUpstream({CLAUDE: [status(502)], MINI: [status(500)]})
    error = send_error(config(max_retries=max_retries), upstream, CLAUDE)
    assert upstream.calls == [CLAUDE] * (max_retries + 1) + [MINI] * (max_retries + 1)
    assert error.status == 502


def test_backoff_doubles_between_retries_and_is_not_slept_before_failing_over(sleeps):
    upstream = ScriptedUpstream({CLAUDE: [status(500)], MINI: [status(500), ok()]})
    send(config(max_retries=3), upstream, CLAUDE)
    # Claude: 3 retries (0.05, 0.1, 0.2), none after its last attempt; the default: one retry.
    assert sleeps == [0.05, 0.1, 0.2, 0.05]


def test_a_providers_fallbacks_are_tried_in_order_instead_of_the_default(sleeps):
    cfg = config(max_retries=0, claude={"fallbacks": [GPT4O, MINI]})
    upstream = ScriptedUpstream({CLAUDE: [status(500)], GPT4O: [UNREACHABLE], MINI: [ok("last in the chain")]})
    answer = send(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, GPT4O, MINI]
    assert answer.provider.model == MINI and answer.attempts == 3


def test_explicit_fallbacks_replace_the_default_model(sleeps):
    cfg = config(max_retries=0, claude={"fallbacks": [GPT4O]})
    upstream = ScriptedUpstream({CLAUDE: [status(500)], GPT4O: [status(503)], MINI: [ok()]})
    error = send_error(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, GPT4O]  # the default is not appended when fallbacks are set
    assert MINI not in upstream.calls
    assert GPT4O in error.message  # the last provider's error is the one raised...
    assert error.message.endswith(f"(tried {CLAUDE}, then {GPT4O})")  # ...naming every model tried
    assert str(error) == error.message


def test_empty_fallbacks_never_fail_over(sleeps):
    cfg = config(max_retries=1, claude={"fallbacks": []})
    upstream = ScriptedUpstream({CLAUDE: [status(500)], MINI: [ok()]})
    error = send_error(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, CLAUDE]
    assert CLAUDE in error.message


def test_the_default_model_is_not_tried_twice_when_it_failed_first(sleeps):
    upstream = ScriptedUpstream({MINI: [status(500)]})
    send_error(config(max_retries=1), upstream, MINI)
    assert upstream.calls == [MINI, MINI]


def test_a_fallback_chain_naming_a_provider_twice_calls_it_once(sleeps):
    cfg = config(max_retries=0, claude={"fallbacks": [GPT4O, CLAUDE, GPT4O]})
    upstream = ScriptedUpstream({CLAUDE: [status(500)], GPT4O: [status(500)]})
    send_error(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, GPT4O]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_non_transient_errors_stop_at_once_without_retry_or_failover(sleeps, code):
    upstream = ScriptedUpstream({CLAUDE: [status(code)], MINI: [ok()]})
    error = send_error(config(max_retries=2), upstream, CLAUDE)
    assert upstream.calls == [CLAUDE]
    assert sleeps == []
    assert not error.transient
    expected = upstream_failure(CLAUDE, code, "")
    assert (error.status, error.code) == (expected.status, expected.code)


def test_a_non_transient_error_after_a_failover_stops_the_chain(sleeps):
    cfg = config(max_retries=0, claude={"fallbacks": [GPT4O, MINI]})
    upstream = ScriptedUpstream({CLAUDE: [status(500)], GPT4O: [status(401)], MINI: [ok()]})
    error = send_error(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, GPT4O]
    assert error.code == "upstream_auth_failed"


def test_an_upstream_timeout_is_not_retried_on_the_same_provider_but_fails_over(sleeps):
    upstream = ScriptedUpstream({CLAUDE: [TIMEOUT], MINI: [ok("default answered")]})
    answer = send(config(max_retries=3), upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, MINI]
    assert sleeps == []
    assert answer.provider.model == MINI and answer.attempts == 2


def test_when_every_candidate_times_out_the_client_gets_504(sleeps):
    upstream = ScriptedUpstream({CLAUDE: [TIMEOUT], MINI: [TIMEOUT]})
    error = send_error(config(max_retries=3), upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, MINI]
    assert (error.status, error.code) == (504, "upstream_timeout")


def test_a_rate_limited_provider_is_retried_and_its_429_is_what_the_client_gets(sleeps):
    cfg = config(max_retries=1, claude={"fallbacks": []})
    upstream = ScriptedUpstream({CLAUDE: [fails(lambda m: upstream_failure(m, 429, "slow down", "30"))]})
    error = send_error(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, CLAUDE]
    assert error.status == 429 and error.headers == {"Retry-After": "30"}
    assert sleeps == [30.0]  # the wait it asked for, which the 120 s default deadline allows


def test_a_retry_after_given_as_an_http_date_is_honoured(sleeps):
    from email.utils import formatdate

    cfg = config(max_retries=1, claude={"fallbacks": []})
    when = formatdate(time.time() + 20, usegmt=True)
    upstream = ScriptedUpstream({CLAUDE: [fails(lambda m: upstream_failure(m, 429, "slow down", when))]})
    send_error(cfg, upstream, CLAUDE)
    assert len(sleeps) == 1 and 18 <= sleeps[0] <= 20


def test_a_429_asking_for_more_than_the_deadline_leaves_goes_to_the_next_model_at_once(sleeps):
    cfg = config(max_retries=2)
    upstream = ScriptedUpstream({CLAUDE: [fails(lambda m: upstream_failure(m, 429, "slow down", "600"))],
                                 MINI: [ok("the default answered")]})
    answer = send(cfg, upstream, CLAUDE)
    assert upstream.calls == [CLAUDE, MINI] and sleeps == []
    assert answer.provider.model == MINI


def test_a_provider_whose_key_is_not_set_is_skipped_without_calling_it(sleeps):
    cfg = config(max_retries=2, claude={"access_key": "$INPROC_UNSET_ANTHROPIC_KEY"}, env={})
    upstream = ScriptedUpstream({CLAUDE: [ok("must not be called")], MINI: [ok("default answered")]})
    answer = send(cfg, upstream, CLAUDE)
    assert upstream.calls == [MINI]
    assert answer.provider.model == MINI and answer.attempts == 2  # the skipped one counts as an attempt


def test_a_missing_key_with_no_fallback_is_a_502_naming_the_environment_variable(sleeps):
    cfg = config(max_retries=2, claude={"access_key": "${INPROC_UNSET_ANTHROPIC_KEY}", "fallbacks": []}, env={})
    upstream = ScriptedUpstream({CLAUDE: [ok()]})
    error = send_error(cfg, upstream, CLAUDE)
    assert upstream.calls == []
    assert (error.status, error.code) == (502, "provider_key_missing")
    assert "INPROC_UNSET_ANTHROPIC_KEY" in error.message


def test_errors_are_scrubbed_of_every_configured_providers_key(sleeps):
    cfg = config(max_retries=0, claude={"fallbacks": []})
    keys = [p.access_key for p in cfg.providers]
    upstream = ScriptedUpstream({CLAUDE: [fails(lambda m: upstream_failure(m, 400, f"bad keys: {' '.join(keys)}"))]})
    error = send_error(cfg, upstream, CLAUDE)
    assert all(key not in error.message and key not in str(error) for key in keys)
    assert error.message.count("***") == len(keys)


def test_the_failover_log_line_carries_no_provider_key(sleeps, caplog):
    cfg = config(max_retries=0)
    keys = [p.access_key for p in cfg.providers]
    upstream = ScriptedUpstream({CLAUDE: [fails(lambda m: upstream_failure(m, 503, f"down; keys {' '.join(keys)}"))],
                                 MINI: [ok("the default answered")]})
    with caplog.at_level("WARNING", logger="gateway.forwarding"):
        send(cfg, upstream, CLAUDE)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "failing over from" in logged and "***" in logged
    assert not any(key in logged for key in keys)


def test_the_first_upstream_that_speaks_the_wire_carries_the_call(sleeps):
    cfg = config(max_retries=0)
    chat_only = ScriptedUpstream({CLAUDE: [ok("chat upstream")]}, wires=("chat",))
    everything = ScriptedUpstream({CLAUDE: [ok("general upstream")]})
    forwarder = Forwarder(cfg, upstreams=[chat_only, everything])
    chat = run(forwarder.send(cfg.find(CLAUDE), ChatWire(), BODY))
    messages = run(forwarder.send(cfg.find(CLAUDE), MessagesWire(), {"max_tokens": 5, **BODY}))
    assert json.loads(chat.body)["text"] == "chat upstream"
    assert json.loads(messages.body) == {"text": "general upstream", "wire": "messages"}
    run(forwarder.close())
    assert chat_only.closed and everything.closed


def test_upstream_seconds_count_provider_time_including_failed_calls_but_not_backoff():
    # Real backoff sleeps here (0.05 s): the point is that they are left out.
    cfg = config(max_retries=1)
    upstream = ScriptedUpstream({CLAUDE: [status(500), ok()]}, delay=0.02)
    started = time.perf_counter()
    answer = send(cfg, upstream, CLAUDE)
    wall = time.perf_counter() - started
    assert upstream.calls == [CLAUDE, CLAUDE]
    assert answer.upstream_seconds >= 0.035  # two calls of 0.02 s
    assert answer.upstream_seconds <= wall - 0.045  # the 0.05 s backoff is not provider time


def test_retries_and_failed_calls_are_counted_in_metrics(sleeps):
    metrics = Metrics()
    upstream = ScriptedUpstream({CLAUDE: [status(500)], MINI: [status(503), ok()]})
    send(config(max_retries=1), upstream, CLAUDE, metrics=metrics)

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    assert sample("gateway_retries_total", provider=CLAUDE) == 1
    assert sample("gateway_retries_total", provider=MINI) == 1
    assert sample("gateway_upstream_errors_total", provider=CLAUDE, status="502") == 2
    assert sample("gateway_upstream_errors_total", provider=MINI, status="502") == 1
    assert sample("gateway_upstream_latency_seconds_count", provider=MINI, stream="false") == 1
