"""Measure a router's accuracy on the project's labelled evaluation set.

    python benchmarks/routing_eval.py                 # embedded router, route descriptions only
    python benchmarks/routing_eval.py --examples      # ... plus the routes' `examples`
    python benchmarks/routing_eval.py --no-builtin    # ... without the built-in intent library
    python benchmarks/routing_eval.py --split tune    # only the tuning half (or `held` for the held-out half)
    python benchmarks/routing_eval.py --wire messages # conversations in the Anthropic Messages shape (or responses)
    python benchmarks/routing_eval.py --cases benchmarks/routing_fresh.yaml  # another file's cases, same routes
    python benchmarks/routing_eval.py --llm MODEL --base-url URL [--api-key-env VAR]

Prints accuracy overall, per conversation shape, per language, per split and
per route (precision and recall), the confusion matrix and the decision
latency; `--json FILE` writes the same figures as JSON.

Every case is built as a request body of the chosen wire (OpenAI chat,
Anthropic Messages or OpenAI Responses) and read by that surface's `ask`, as
the gateway reads it, so the router sees exactly what it would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import Config, parse_config  # noqa: E402
from gateway.routers import Router  # noqa: E402

EVAL_SET = Path(__file__).with_name("routing_eval.yaml")
NONE = "(none)"
SHAPES = ("prompt", "turns", "agent", "pasted")
SHAPE_NAMES = {"prompt": "single", "turns": "followup", "agent": "agent", "pasted": "pasted"}
HARNESS_BLOCK = ("<system-reminder>\nThe user's working directory is /home/dev/project. Git branch: feature/invoices. "
                 "Recently edited: app/models.py, tests/test_models.py. Do not mention this reminder.\n"
                 "</system-reminder>")


@dataclass
class Case:
    """One labelled conversation, kept wire-neutral until `body` builds it for a wire."""

    expect: str
    lang: str
    shape: str
    split: str
    spec: Any
    text: str  # for listing mistakes
    group: str | None = None  # parallel sets: the same request in each language shares a group


def load_cases(path: Path = EVAL_SET, cases_path: Path | None = None
               ) -> tuple[list[dict[str, Any]], list[Case], dict[str, Any]]:
    """Routes, cases and the agent context (system prompt, tool outputs) of the evaluation set;
    with `cases_path`, that file's cases instead (same routes and tool outputs)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if cases_path is not None:
        data["cases"] = yaml.safe_load(cases_path.read_text(encoding="utf-8"))["cases"]
    context = {"system": data["agent_system"],
               "outputs": {k: v * data["repeat"] for k, v in data["tool_outputs"].items()}}
    cases: list[Case] = []
    seen: dict[str, int] = defaultdict(int)
    splits: dict[str, str] = {}  # parallel sets: group -> its half
    groups_seen: dict[str, int] = defaultdict(int)
    for raw in data["cases"]:
        shape = next(s for s in SHAPES if s in raw)
        expect = raw["expect"] or NONE
        # Alternate tuning / held-out within each route, in file order, so both halves cover every route.
        # In a parallel set the unit is the group (one request in every language), so no request is
        # held out in one language and tuned on in another.
        group = raw.get("group")
        if group is None:
            split = "tune" if seen[expect] % 2 == 0 else "held"
            seen[expect] += 1
        else:
            if group not in splits:  # groups alternate in file order, within each shape
                splits[group] = "tune" if groups_seen[shape] % 2 == 0 else "held"
                groups_seen[shape] += 1
            split = splits[group]
        spec = raw[shape]
        text = spec if shape == "prompt" else spec[-1] if shape == "turns" else spec["prompt"]
        cases.append(Case(expect, raw.get("lang", "en"), SHAPE_NAMES[shape], split, spec, str(text), group))
    return data["routes"], cases, context


def _tool_call(call: str) -> tuple[str, str]:
    name, _, arg = call.partition(" ")
    return name, json.dumps({"command" if name == "bash" else "arg": arg})


def chat_body(case: Case, ctx: dict[str, Any]) -> dict[str, Any]:
    """The case as an OpenAI chat completions body."""
    if case.shape == "single":
        return {"messages": [{"role": "user", "content": case.spec}]}
    if case.shape == "followup":
        roles = ["user", "assistant"] * len(case.spec)
        return {"messages": [{"role": r, "content": t} for r, t in zip(roles, case.spec)]}
    if case.shape == "pasted":
        paste = ctx["outputs"][case.spec["output"]]
        text = f"{paste}\n\n{case.spec['prompt']}" if case.spec.get("after") else f"{case.spec['prompt']}\n\n{paste}"
        return {"messages": [{"role": "user", "content": text}]}
    agent = case.spec
    name, args = _tool_call(agent["call"])
    user: Any = agent["prompt"]
    if agent.get("harness"):
        user = [{"type": "text", "text": HARNESS_BLOCK}, {"type": "text", "text": agent["prompt"]}]
    return {"messages": [
        {"role": "system", "content": ctx["system"]},
        {"role": "user", "content": user},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": ctx["outputs"][agent["output"]]},
    ]}


def messages_body(case: Case, ctx: dict[str, Any]) -> dict[str, Any]:
    """The same conversation as an Anthropic Messages body (tool use and result as content blocks)."""
    chat = chat_body(case, ctx)["messages"]
    body: dict[str, Any] = {"max_tokens": 1024, "messages": []}
    for m in chat:
        if m["role"] == "system":
            body["system"] = m["content"]
        elif m["role"] == "tool":
            body["messages"].append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": m["content"]}]})
        elif m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            body["messages"].append({"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": fn["name"], "input": json.loads(fn["arguments"])}]})
        else:
            content = m["content"]
            body["messages"].append({"role": m["role"], "content": content if isinstance(content, str) else [
                {"type": "text", "text": p["text"]} for p in content]})
    return body


def responses_body(case: Case, ctx: dict[str, Any]) -> dict[str, Any]:
    """The same conversation as an OpenAI Responses body (function_call and its output as items)."""
    chat = chat_body(case, ctx)["messages"]
    body: dict[str, Any] = {"input": []}
    for m in chat:
        if m["role"] == "system":
            body["instructions"] = m["content"]
        elif m["role"] == "tool":
            body["input"].append({"type": "function_call_output", "call_id": "call_1", "output": m["content"]})
        elif m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            body["input"].append({"type": "function_call", "call_id": "call_1", "name": fn["name"],
                                  "arguments": fn["arguments"]})
        else:
            kind = "input_text" if m["role"] == "user" else "output_text"
            content = m["content"]
            parts = [{"type": kind, "text": content}] if isinstance(content, str) else [
                {"type": kind, "text": p["text"]} for p in content]
            body["input"].append({"type": "message", "role": m["role"], "content": parts})
    return body


def wire_reader(wire: str) -> Callable[[Case, dict[str, Any]], list[dict[str, Any]]]:
    """Case -> the messages the router gets, read by the wire's own surface as the gateway reads them."""
    from gateway.api import chat, messages, responses

    surfaces = {"chat": (chat.SURFACE, chat_body), "messages": (messages.SURFACE, messages_body),
                "responses": (responses.SURFACE, responses_body)}
    surface, build_body = surfaces[wire]
    return lambda case, ctx: surface.ask(build_body(case, ctx)).messages


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


def _accuracy_by(cases: list[Case], predictions: list[str], key: Callable[[Case], str]) -> dict[str, dict]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for case, got in zip(cases, predictions):
        groups[key(case)].append(case.expect == got)
    return {g: {"accuracy": sum(v) / len(v), "cases": len(v)} for g, v in sorted(groups.items())}


def _same_as_english(cases: list[Case], predictions: list[str]) -> dict[str, dict]:
    """For a parallel set (cases with a `group`): per language, the share of groups whose case in
    that language got the route its English case got, right or wrong; what multilingual routing
    promises is exactly that agreement."""
    english = {c.group: p for c, p in zip(cases, predictions) if c.group and c.lang == "en"}
    agree: dict[str, list[bool]] = defaultdict(list)
    for case, got in zip(cases, predictions):
        if case.group in english and case.lang != "en":
            agree[case.lang].append(got == english[case.group])
    return {lang: {"accuracy": sum(v) / len(v), "cases": len(v)} for lang, v in sorted(agree.items())}


async def evaluate(router: Router, cases: list[Case], read: Callable[[Case], list[dict]]) -> dict[str, Any]:
    predictions, latencies, failures = [], [], 0
    for case in cases:
        messages = read(case)
        started = time.perf_counter()
        try:
            got = await router.route(messages)
        except Exception:
            got, failures = "(router failed)", failures + 1
        latencies.append(time.perf_counter() - started)
        predictions.append(got or NONE)
    labels = sorted({c.expect for c in cases} | set(predictions), key=lambda x: (x == NONE, x))
    confusion = {e: {p: 0 for p in labels} for e in labels}
    for case, got in zip(cases, predictions):
        confusion[case.expect][got] += 1
    per_route = {}
    for label in labels:
        tp = confusion[label][label]
        predicted = sum(confusion[e][label] for e in labels)
        actual = sum(confusion[label].values())
        per_route[label] = {"precision": tp / predicted if predicted else 0.0,
                            "recall": tp / actual if actual else 0.0, "support": actual}
    correct = sum(1 for c, p in zip(cases, predictions) if c.expect == p)
    ordered = sorted(latencies)
    return {
        "same_as_english": _same_as_english(cases, predictions),
        "cases": len(cases), "accuracy": correct / len(cases), "router_failures": failures,
        "per_shape": _accuracy_by(cases, predictions, lambda c: c.shape),
        "per_language": _accuracy_by(cases, predictions, lambda c: c.lang),
        "per_language_group": _accuracy_by(cases, predictions, lambda c: "en" if c.lang == "en" else "non-en"),
        "per_split": _accuracy_by(cases, predictions, lambda c: c.split),
        "per_route": per_route, "confusion": confusion,
        "latency_us": {"p50": statistics.median(ordered) * 1e6,
                       "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6},
        "mistakes": [{"expected": c.expect, "got": p, "shape": c.shape, "lang": c.lang, "split": c.split,
                      "text": c.text[:90]} for c, p in zip(cases, predictions) if c.expect != p],
    }


def report(title: str, result: dict[str, Any], show_mistakes: bool) -> None:
    print(f"\n== {title}: accuracy {result['accuracy']:.1%} on {result['cases']} cases "
          f"(latency p50 {result['latency_us']['p50']:.0f} us, p99 {result['latency_us']['p99']:.0f} us)")
    for name in ("per_shape", "per_language_group", "per_language", "per_split", "same_as_english"):
        if not result[name]:
            continue
        cells = "  ".join(f"{g} {m['accuracy']:.1%} ({m['cases']})" for g, m in result[name].items())
        print(f"{name.removeprefix('per_').replace('_', ' '):<16}{cells}")
    print(f"\n{'route':<20}{'precision':>10}{'recall':>8}{'n':>5}")
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
            where = f"[{m['split']} {m['shape']} {m['lang']}]"
            print(f"  {where} expected {m['expected']:<17} got {m['got']:<17} {m['text']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", action="store_true", help="give routes their `examples`")
    parser.add_argument("--no-builtin", action="store_true", help="embedded router without its intent library")
    parser.add_argument("--split", choices=("all", "tune", "held"), default="all",
                        help="evaluate one half only: `tune` (used to choose constants) or `held` (held out)")
    parser.add_argument("--wire", choices=("chat", "messages", "responses"), default="chat",
                        help="the request shape the conversations are sent in")
    parser.add_argument("--llm", help="route with this model through litellm instead (e.g. openai/arch-router)")
    parser.add_argument("--base-url", help="the LLM router's base URL")
    parser.add_argument("--api-key-env", help="environment variable holding the LLM router's key")
    parser.add_argument("--mistakes", action="store_true", help="list every misrouted case")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--cases", type=Path, help="evaluate this file's `cases:` instead (e.g. benchmarks/"
                        "routing_fresh.yaml, written blind after the router was tuned)")
    args = parser.parse_args(argv)

    routes, cases, ctx = load_cases(cases_path=args.cases)
    if args.split != "all":
        cases = [c for c in cases if c.split == args.split]
    config = eval_config(routes, args.examples, args.llm, args.base_url, args.api_key_env)
    router = build(config, use_builtin=not args.no_builtin)
    read = wire_reader(args.wire)
    result = asyncio.run(evaluate(router, cases, lambda case: read(case, ctx)))
    kind = f"LLM router {args.llm}" if args.llm else "embedded router"
    variant = ("with examples" if args.examples else "descriptions only") + (
        ", no built-in intents" if args.no_builtin else "") + f", {args.wire} wire" + (
        f", {args.split} split" if args.split != "all" else "")
    report(f"{kind}, {variant}", result, args.mistakes)
    if args.json:
        Path(args.json).write_text(json.dumps({"router": kind, "variant": variant, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
