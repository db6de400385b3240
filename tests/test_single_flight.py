"""Single flight in the decision when the first request of a session fails, and a failing store around stale pins."""

from __future__ import annotations

import asyncio

from gateway.config import parse_config
from gateway.decision import Decider
from gateway.pins import MemoryPinStore, Pin
from test_decision import CONFIG, ScriptedRouter, body, run


def test_waiters_on_a_cancelled_first_request_decide_for_themselves():
    """Issue 15 item 13: the first request's client went away; the ones waiting on it must not get its CancelledError."""
    decider = Decider(parse_config(CONFIG, env={}), ScriptedRouter(delay=0.05), MemoryPinStore(ttl=600, max_entries=10))

    async def scenario():
        first = asyncio.create_task(decider.decide(body("code"), "s1", "s1"))
        await asyncio.sleep(0.01)  # the first request is routing now
        waiters = [asyncio.create_task(decider.decide(body("reasoning"), "s1", "s1")) for _ in range(5)]
        await asyncio.sleep(0.01)
        first.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        return results, await decider.store.peek("s1")

    results, stored = run(scenario())
    assert all(not isinstance(r, BaseException) for r in results), results
    assert {r.model for r in results} == {"openai/gpt-4o"}  # one waiter routed in its place, the others followed
    assert sum(not r.pinned for r in results) == 1
    assert stored is not None and stored[0].model == "openai/gpt-4o"


def test_waiters_on_a_failed_first_request_decide_for_themselves():
    class Exploding(ScriptedRouter):
        async def route(self, messages):
            if self.calls == 0:
                self.calls += 1
                await asyncio.sleep(0.02)
                raise KeyError("a bug in the router")
            return await super().route(messages)

    decider = Decider(parse_config(CONFIG, env={}), Exploding(), MemoryPinStore(ttl=600, max_entries=10))

    async def scenario():
        return await asyncio.gather(*(decider.decide(body("code"), "s2", "s2") for _ in range(4)),
                                    return_exceptions=True)

    results = run(scenario())
    assert isinstance(results[0], KeyError)  # the request that hit the bug fails; the others do not
    assert [r.model for r in results[1:]] == ["anthropic/claude-sonnet-4-20250514"] * 3


def test_a_stale_pin_that_cannot_be_deleted_is_routed_around():
    """Issue 15 item 13: deleting a pin to a removed model raised a store error straight into a 500."""
    class NoDeletes(MemoryPinStore):
        async def delete(self, key):
            raise ConnectionError("redis down")

    store = NoDeletes(ttl=600, max_entries=10)
    decider = Decider(parse_config(CONFIG, env={}), ScriptedRouter(), store)

    async def scenario():
        await store.put_if_absent("s3", Pin("openai/retired-model", "old", 0.0, 0.0))
        return await decider.decide(body("code"), "s3", "s3")

    decision = run(scenario())
    assert (decision.model, decision.pinned) == ("anthropic/claude-sonnet-4-20250514", False)
    assert decider.stats.store_errors == 1


def test_concurrent_requests_of_a_pinned_session_share_one_lookup():
    class Counting(MemoryPinStore):
        lookups = 0

        async def get(self, key):
            Counting.lookups += 1
            await asyncio.sleep(0.01)
            return await super().get(key)

    store = Counting(ttl=600, max_entries=10)
    decider = Decider(parse_config(CONFIG, env={}), ScriptedRouter(), store)

    async def scenario():
        await store.put_if_absent("s4", Pin("openai/gpt-4o", "reasoning", 0.0, 0.0))
        return await asyncio.gather(*(decider.decide(body("code"), "s4", "s4") for _ in range(50)))

    decisions = run(scenario())
    assert {(d.model, d.pinned) for d in decisions} == {("openai/gpt-4o", True)}
    assert Counting.lookups == 1 and decider.stats.hits == 50
