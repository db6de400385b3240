"""Measure a router's accuracy on the project's labelled evaluation set.

    python benchmarks/routing_eval.py                 # embedded router, route descriptions only
    python benchmarks/routing_eval.py --examples      # ... plus the routes' `examples`
    python benchmarks/routing_eval.py --no-builtin    # ... without the built-in intent library
    python benchmarks/routing_eval.py --llm MODEL --base-url URL [--api-key-env VAR]

Prints accuracy, per-route precision and recall, the confusion matrix and the
decision latency; `--json FILE` writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import Config, parse_config  # noqa: E402
from gateway.routers import Router  # noqa: E402

EVAL_SET = Path(__file__).with_name("routing_eval.yaml")
NONE = "(none)"


def load_cases(path: Path = EVAL_SET) -> tuple[list[dict[str, Any]], list[tuple[list[dict], str]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for case in data["cases"]:
        if "conversation" in case:
            messages = case["conversation"]
        else:
            messages = [{"role": "user", "content": case["prompt"]}]
        cases.append((messages, case["expect"] or NONE))
    return data["routes"], cases


def eval_config(routes: list[dict[str, Any]], with_examples: bool, llm: str | None = None,
                base_url: str | None = None, key_env: str | None = None) -> Config:
    """A config with one fake model per route, and optionally an LLM router."""
    providers = [{"model": "openai/default-model", "default": True}]
    for r in routes:
        pref = {"name": r["name"], "description": r["description"]}
        if with_examples and r.get("examples"):
            pref["examples"] = r["examples"]
        providers.append({"model": f"openai/model-for-{r['name']}", "routing_preferences": [pref]})
    raw: dict[str, Any] = {"model_providers": providers}
    if llm:
        router_entry: dict[str, Any] = {"model": llm, "name": "router"}
        if base_url:
            router_entry["base_url"] = base_url
        if key_env:
            router_entry["access_key"] = f"${key_env}"
        providers.append(router_entry)
        raw["routing"] = {"model": llm, "llm_provider": "router", "timeout": 30}
    import os

    return parse_config(raw, env=os.environ)


def build(config: Config, use_builtin: bool) -> Router:
    if config.routing.model:
        from gateway.routers.llm import LLMRouter

        return LLMRouter(config)
    from gateway.routers.embedded import EmbeddedRouter

    return EmbeddedRouter(config.routes, use_builtin=use_builtin)


async def evaluate(router: Router, cases: list[tuple[list[dict], str]]) -> dict[str, Any]:
    predictions, latencies, failures = [], [], 0
    for messages, _ in cases:
        started = time.perf_counter()
        try:
            got = await router.route(messages)
        except Exception:
            got, failures = "(router failed)", failures + 1
        latencies.append(time.perf_counter() - started)
        predictions.append(got or NONE)
    labels = sorted({e for _, e in cases} | set(predictions), key=lambda x: (x == NONE, x))
    confusion = {e: {p: 0 for p in labels} for e in labels}
    for (_, expected), got in zip(cases, predictions):
        confusion[expected][got] += 1
    per_route = {}
    for label in labels:
        tp = confusion[label][label]
        predicted = sum(confusion[e][label] for e in labels)
        actual = sum(confusion[label].values())
        per_route[label] = {"precision": tp / predicted if predicted else 0.0,
                            "recall": tp / actual if actual else 0.0, "support": actual}
    correct = sum(1 for (_, e), p in zip(cases, predictions) if e == p)
    ordered = sorted(latencies)
    return {
        "cases": len(cases), "accuracy": correct / len(cases), "router_failures": failures,
        "per_route": per_route, "confusion": confusion,
        "latency_us": {"p50": statistics.median(ordered) * 1e6,
                       "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6},
        "mistakes": [{"expected": e, "got": p, "text": str(m[-1].get("content"))[:90]}
                     for (m, e), p in zip(cases, predictions) if e != p],
    }


def report(title: str, result: dict[str, Any], show_mistakes: bool) -> None:
    print(f"\n== {title}: accuracy {result['accuracy']:.1%} on {result['cases']} cases "
          f"(latency p50 {result['latency_us']['p50']:.0f} us, p99 {result['latency_us']['p99']:.0f} us)")
    print(f"{'route':<20}{'precision':>10}{'recall':>8}{'n':>5}")
    for label, m in result["per_route"].items():
        print(f"{label:<20}{m['precision']:>10.2f}{m['recall']:>8.2f}{m['support']:>5}")
    labels = list(result["confusion"])
    short = [label[:6] for label in labels]
    print("\nconfusion (rows expected, columns predicted)")
    print(" " * 20 + "".join(f"{s:>8}" for s in short))
    for label in labels:
        print(f"{label:<20}" + "".join(f"{result['confusion'][label][p]:>8}" for p in labels))
    if show_mistakes:
        print("\nmistakes:")
        for m in result["mistakes"]:
            print(f"  expected {m['expected']:<18} got {m['got']:<18} {m['text']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", action="store_true", help="give routes their `examples`")
    parser.add_argument("--no-builtin", action="store_true", help="embedded router without its intent library")
    parser.add_argument("--llm", help="route with this model through litellm instead (e.g. openai/arch-router)")
    parser.add_argument("--base-url", help="the LLM router's base URL")
    parser.add_argument("--api-key-env", help="environment variable holding the LLM router's key")
    parser.add_argument("--mistakes", action="store_true", help="list every misrouted case")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    routes, cases = load_cases()
    config = eval_config(routes, args.examples, args.llm, args.base_url, args.api_key_env)
    router = build(config, use_builtin=not args.no_builtin)
    result = asyncio.run(evaluate(router, cases))
    kind = f"LLM router {args.llm}" if args.llm else "embedded router"
    variant = ("with examples" if args.examples else "descriptions only") + (
        ", no built-in intents" if args.no_builtin else "")
    report(f"{kind}, {variant}", result, args.mistakes)
    if args.json:
        Path(args.json).write_text(json.dumps({"router": kind, "variant": variant, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
