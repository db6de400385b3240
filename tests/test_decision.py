"""The decision path's rules, with a scripted router so each rule is observable."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
import yaml

from gateway.config import parse_config
from gateway.decision import Ask, Decider
from gateway.errors import BadRequest, RouterError
from gateway.pins import MemoryPinStore, Pin

CONFIG = yaml.safe_load(textwrap.dedent("""\
    model_providers:
      - model: openai/gpt-4o-mini
        default: true
      - model: openai/gpt-4o
        routing_preferences:
          - {name: reasoning, description: hard thinking}
      - model: anthropic/claude-sonnet-4-20250514
        routing_preferences:
          - {name: code, description: writing code}
    model_aliases:
      fast: {target: openai/gpt-4o-mini}
    """))


class ScriptedRouter:
    """Answers the route named by the last user message ('code', 'reasoning', 'fail' or other)."""

    name = "scripted"

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def route(self, messages):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        intent = messages[-1]["content"]
        if intent == "fail":
            raise RouterError("router model timed out")
        return intent if intent in ("code", "reasoning") else None


def body(intent: str, model: str | None = None) -> Ask:
    return Ask([{"role": "user", "content": intent}], model)


@pytest.fixture
def decider() -> Decider:
    return Decider(parse_config(CONFIG, env={}), ScriptedRouter(), MemoryPinStore(ttl=600, max_entries=100))


def run(coro):
    return asyncio.run(coro)


def test_second_request_of_session_is_pinned_without_calling_router(decider):
    async def scenario():
        first = await decider.decide(body("code"), "s1", "s1")
        second = await decider.decide(body("reasoning"), "s1", "s1")
        return first, second

    first, second = run(scenario())
    assert (first.model, first.pinned, first.route) == ("anthropic/claude-sonnet-4-20250514", False, "code")
    assert (second.model, second.pinned, second.route) == ("anthropic/claude-sonnet-4-20250514", True, "code")
    assert decider.router.calls == 1


def test_without_session_every_request_is_routed_afresh(decider):
    async def scenario():
        return [await decider.decide(body(i)) for i in ("code", "reasoning", "code")]

    assert [d.model for d in run(scenario())] == [
        "anthropic/claude-sonnet-4-20250514", "openai/gpt-4o", "anthropic/claude-sonnet-4-20250514"]
    assert decider.router.calls == 3


def test_no_route_serves_requested_model_by_any_spelling_else_default(decider):
    async def scenario():
        return [(await decider.decide(body("hello", **extra))).model
                for extra in ({}, {"model": "gpt-4o"}, {"model": "fast"}, {"model": "openai/gpt-4o"})]

    assert run(scenario()) == ["openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4o"]


def test_unknown_model_is_refused_before_routing(decider):
    with pytest.raises(BadRequest, match="not configured"):
        run(decider.decide(body("code", model="gpt-9")))
    assert decider.router.calls == 0


def test_router_failure_falls_back_and_does_not_pin(decider):
    async def scenario():
        failed = await decider.decide(body("fail", model="gpt-4o"), "s2", "s2")
        after = await decider.decide(body("code"), "s2", "s2")
        return failed, after

    failed, after = run(scenario())
    assert (failed.model, failed.outcome, failed.pinned) == ("openai/gpt-4o", "router_failed", False)
    assert (after.outcome, after.pinned, after.route) == ("routed", False, "code")  # routed again, then pinned
    assert decider.stats.router_failed == 1


def test_pin_to_a_model_no_longer_configured_is_dropped_and_rerouted(decider):
    async def scenario():
        await decider.store.put_if_absent("s3", Pin("openai/retired-model", "old", 0.0, 0.0))
        return await decider.decide(body("reasoning"), "s3", "s3")

    decision = run(scenario())
    assert (decision.model, decision.pinned) == ("openai/gpt-4o", False)


def test_concurrent_first_requests_share_one_routing_run(decider):
    decider.router.delay = 0.05

    async def scenario():
        intents = ["code", "reasoning"] * 50
        return await asyncio.gather(*(decider.decide(body(i), "s4", "s4") for i in intents))

    decisions = run(scenario())
    assert len({d.model for d in decisions}) == 1
    assert sum(not d.pinned for d in decisions) == 1
    assert decider.router.calls == 1
    # Every request looked before the pin existed: 100 store misses, no store hits counted twice.
    assert (decider.stats.misses, decider.stats.hits) == (100, 0)


def test_a_pin_written_first_by_another_instance_wins(decider):
    """Two replicas race: ours routed to code, but the store already holds the other's pin."""
    class RacingStore(MemoryPinStore):
        async def get(self, key):
            return None  # the other replica's pin lands between our read and our write

    store = RacingStore(ttl=600, max_entries=10)
    other = Decider(decider.config, ScriptedRouter(), store)

    async def scenario():
        await store.put_if_absent("s5", Pin("openai/gpt-4o", "reasoning", 0.0, 0.0))
        return await other.decide(body("code"), "s5", "s5")

    decision = run(scenario())
    assert (decision.model, decision.route, decision.pinned) == ("openai/gpt-4o", "reasoning", True)


def test_store_outage_fails_open(decider):
    class BrokenStore(MemoryPinStore):
        async def get(self, key):
            raise ConnectionError("redis down")

        async def put_if_absent(self, key, pin):
            raise ConnectionError("redis down")

    broken = Decider(decider.config, ScriptedRouter(), BrokenStore(ttl=600, max_entries=10))
    decision = run(broken.decide(body("code"), "s6", "s6"))
    assert (decision.model, decision.pinned) == ("anthropic/claude-sonnet-4-20250514", False)
    assert broken.stats.store_errors == 2


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_ttl_slides_on_use_and_expires_when_idle():
    timer = FakeTimer()
    store = MemoryPinStore(ttl=10, max_entries=10, timer=timer)

    async def scenario():
        await store.put_if_absent("busy", Pin("m", None, 0, 0))
        await store.put_if_absent("idle", Pin("m", None, 0, 0))
        for _ in range(5):  # 20 s of use, 4 s apart: never idle for the TTL
            timer.now += 4
            assert await store.get("busy") is not None
        return await store.get("busy"), await store.get("idle")

    busy, idle = run(scenario())
    assert busy is not None and idle is None
    assert store.expirations >= 1


def test_memory_store_evicts_least_recently_used_and_keeps_first_writer():
    store = MemoryPinStore(ttl=100, max_entries=2)

    async def scenario():
        first = await store.put_if_absent("a", Pin("m1", None, 0, 0))
        second = await store.put_if_absent("a", Pin("m2", None, 0, 0))
        await store.put_if_absent("b", Pin("m", None, 0, 0))
        await store.get("a")
        await store.put_if_absent("c", Pin("m", None, 0, 0))
        return first, second, await store.get("a"), await store.get("b"), await store.size()

    first, second, a, b, size = run(scenario())
    assert first.model == second.model == "m1"
    assert a is not None and b is None and size == 2
    assert store.evictions == 1


def rss_kib() -> int:
    from pathlib import Path

    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmRSS:"))


def test_a_million_distinct_sessions_leave_the_store_bounded_by_max_entries():
    decider = Decider(parse_config(CONFIG, env={}), ScriptedRouter(), MemoryPinStore(ttl=600, max_entries=10_000))

    async def flood(start: int, n: int):
        for i in range(start, start + n):
            await decider.decide(body("hello"), f"s{i}", f"s{i}")

    run(flood(0, 100_000))  # fill the store and warm the allocator
    before = rss_kib()
    run(flood(100_000, 900_000))
    grown = rss_kib() - before
    assert run(decider.store.size()) == 10_000
    assert decider.store.evictions == 990_000
    assert grown < 20_000, f"RSS grew {grown} KiB after 900,000 more sessions"


def test_a_pin_written_between_lookup_and_write_is_reported_pinned_even_when_it_agrees(decider):
    """The session was pinned (to the same model) after this request looked: it must say pinned, not first."""
    class LateStore(MemoryPinStore):
        async def get(self, key):
            found = await super().get(key)
            await super().put_if_absent(key, Pin("anthropic/claude-sonnet-4-20250514", "code", 0.0, 0.0))
            return found  # what this request saw before the other one's write landed

    late = Decider(decider.config, ScriptedRouter(), LateStore(ttl=600, max_entries=10))
    decision = run(late.decide(body("code"), "s7", "s7"))
    assert (decision.model, decision.pinned, decision.outcome) == ("anthropic/claude-sonnet-4-20250514", True, "pinned")


def test_a_failover_after_a_router_failure_pins_nothing(decider):
    async def go():
        failed = await decider.decide(body("fail"), "s9", "s9")
        await decider.answered("s9", failed, decider.config.find("gpt-4o"))
        return await decider.store.peek("s9")

    assert run(go()) is None  # rule 5: the next request of the session routes again
