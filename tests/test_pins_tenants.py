"""The in-memory pin store's bound is shared fairly: a tenant that floods it evicts its own pins."""

from __future__ import annotations

import asyncio

from gateway.pins import MemoryPinStore, Pin, tenant_of
from gateway.sessions import tenant_prefix


def run(coro):
    return asyncio.run(coro)


def pin(model: str = "m") -> Pin:
    return Pin(model, None, 0.0, 0.0)


def test_the_tenant_of_a_key_is_its_first_prefix_part():
    assert tenant_of(tenant_prefix("alice", None) + "s1") == "alice"
    assert tenant_of(tenant_prefix("alice", "acme") + "s1") == "alice"  # a key's header tenants share its share
    assert tenant_of(tenant_prefix(None, "acme") + "s1") == "acme"
    assert tenant_of("plain-session") == ""
    assert tenant_of("12:short/x") == ""  # a length that does not fit is no prefix


def test_a_tenant_flooding_the_store_evicts_only_its_own_pins():
    store = MemoryPinStore(ttl=600, max_entries=100)
    alice, mallory = tenant_prefix("alice", None), tenant_prefix("mallory", None)

    async def scenario():
        for i in range(30):
            await store.put_if_absent(f"{alice}s{i}", pin("alice-model"))
        for i in range(10_000):
            await store.put_if_absent(f"{mallory}s{i}", pin())
        return [await store.get(f"{alice}s{i}") for i in range(30)]

    alices = run(scenario())
    assert all(p is not None and p.model == "alice-model" for p in alices)
    assert store.tenant_size("alice") == 30 and store.tenant_size("mallory") == 70
    assert run(store.size()) == 100
    assert store.evictions == 10_000 - 70


def test_the_largest_tenant_gives_up_its_least_recently_used_pin():
    store = MemoryPinStore(ttl=600, max_entries=4)
    a, b = tenant_prefix("a", None), tenant_prefix("b", None)

    async def scenario():
        for key in (f"{a}1", f"{a}2", f"{a}3", f"{b}1"):
            await store.put_if_absent(key, pin())
        await store.get(f"{a}1")  # a's least recently used is now a2
        await store.put_if_absent(f"{b}2", pin())
        return {key: await store.peek(key) is not None for key in (f"{a}1", f"{a}2", f"{a}3", f"{b}1", f"{b}2")}

    assert run(scenario()) == {f"{a}1": True, f"{a}2": False, f"{a}3": True, f"{b}1": True, f"{b}2": True}


def test_deleting_and_replacing_keep_the_counts_true():
    store = MemoryPinStore(ttl=600, max_entries=10)
    key = tenant_prefix("a", None) + "s"

    async def scenario():
        await store.put_if_absent(key, pin("one"))
        await store.replace(key, pin("two"))  # same key: still one pin
        assert store.tenant_size("a") == 1
        assert await store.delete(key) and not await store.delete(key)
        return await store.size()

    assert run(scenario()) == 0 and store.tenant_size("a") == 0
