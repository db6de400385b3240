"""Both routers: the embedded one in process, the LLM one against the fake provider playing Arch-Router."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from conftest import provider_config
from gateway.config import Route, load_config
from gateway.errors import RouterError
from gateway.routers.embedded import EmbeddedRouter
from gateway.routers.llm import parse_route_answer

REPO = Path(__file__).resolve().parent.parent

# The seed's five agent steps, in the order the demo sends them.
SEED_STEPS = [
    ("Design a REST API schema for a task management app with users, projects and tasks.", "code_generation"),
    ("Analyze SQL vs NoSQL trade-offs for this system, considering consistency, scale and query patterns.",
     "complex_reasoning"),
    ("Write the SQLAlchemy database models for users, projects and tasks.", "code_generation"),
    ("Review the API design for security vulnerabilities and explain the risks.", "complex_reasoning"),
    ("Implement JWT authentication middleware for the API.", "code_generation"),
]


@pytest.fixture(scope="module")
def seed_router() -> EmbeddedRouter:
    return EmbeddedRouter(load_config(REPO / "config.yaml", env={}).routes)


def user(text) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("prompt, route", SEED_STEPS)
def test_seed_demo_prompts_route_as_the_seed_shows(seed_router, prompt, route):
    assert seed_router.decide(user(prompt)) == route


@pytest.mark.parametrize("prompt", ["hi", "Hello there!", "thanks, that helped", "What is the capital of Peru?",
                                    "how was your weekend?", "good night"])
def test_greetings_thanks_trivia_and_small_talk_match_no_route(seed_router, prompt):
    assert seed_router.decide(user(prompt)) is None


def test_latest_user_intent_decides_with_earlier_turns_as_context(seed_router):
    design_talk = [
        {"role": "system", "content": "You are a helpful engineer."},
        {"role": "user", "content": "Let's analyze the trade-offs of storing events in Postgres versus Kafka."},
        {"role": "assistant", "content": "Postgres is simpler to operate; Kafka scales further..."},
        {"role": "tool", "content": "{\"benchmarks\": [1, 2, 3]}"},
        {"role": "user", "content": "now write the code for it"},
    ]
    assert seed_router.decide(design_talk) == "code_generation"


def test_multipart_content_arrays_are_read(seed_router):
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
               {"type": "text", "text": "Implement a Python function that parses this CSV export."}]
    assert seed_router.decide(user(content)) == "code_generation"


def test_huge_messages_cost_bounded_time(seed_router):
    small = user("Write a Python function that sorts a list of users by age.")
    huge = user("Write a Python function that sorts a list of users by age. " + "lorem ipsum " * 200_000)
    seed_router.decide(huge)  # warm
    t0 = time.perf_counter()
    seed_router.decide(small)
    small_cost = time.perf_counter() - t0
    t0 = time.perf_counter()
    seed_router.decide(huge)
    huge_cost = time.perf_counter() - t0
    # 2.4 MB of text must not cost anything like 1000x a short prompt; generous bound for noisy machines
    assert huge_cost < max(50 * small_cost, 0.05)


def test_route_examples_from_config_are_used():
    plain = [Route("billing", "questions about something", "m1"), Route("shipping", "questions about something else", "m2")]
    with_examples = [Route("billing", "questions about something", "m1",
                           ("why was my card charged twice", "I need a refund for my invoice")),
                     Route("shipping", "questions about something else", "m2",
                           ("where is my parcel", "the delivery is late"))]
    router = EmbeddedRouter(with_examples, use_builtin=False)
    assert router.decide(user("my invoice shows a double charge on the card")) == "billing"
    assert router.decide(user("the parcel delivery hasn't arrived")) == "shipping"
    scores_plain = EmbeddedRouter(plain, use_builtin=False).scores(user("the parcel delivery hasn't arrived"))
    assert abs(scores_plain["billing"] - scores_plain["shipping"]) < abs(
        router.scores(user("the parcel delivery hasn't arrived"))["billing"]
        - router.scores(user("the parcel delivery hasn't arrived"))["shipping"])


@pytest.mark.parametrize("answer, expected", [
    ('{"route": "code_generation"}', "code_generation"),
    ("```json\n{\"route\": \"code_generation\"}\n```", "code_generation"),
    ("{'route': 'complex_reasoning'}", "complex_reasoning"),
    ('{"route": "other"}', "other"),
    ("code_generation", "code_generation"),
    ("The best route is complex_reasoning.", "complex_reasoning"),
    ("route: code_generation", "code_generation"),
    ("I am not sure", None),
    ('{"route": "made_up"}', None),
])
def test_llm_router_answers_are_parsed_tolerantly(answer, expected):
    assert parse_route_answer(answer, {"code_generation", "complex_reasoning"}) == expected


def llm_gateway(start_gateway, fake_provider):
    """A gateway routing with 'Arch-Router', played by the fake provider, with a 1 s timeout."""
    router_entry_and_routing = (
        f"  - model: openai/arch-router\n    name: arch-router\n    base_url: {fake_provider.url}\n"
        "routing:\n  model: Arch-Router\n  llm_provider: arch-router\n  timeout: 1\n")
    return start_gateway(provider_config(fake_provider.url, routing=router_entry_and_routing))


def test_llm_router_routes_with_arch_router_prompt_format(start_gateway, fake_provider):
    gw = llm_gateway(start_gateway, fake_provider)
    fake_provider.clear()
    r = gw.decide("please handle this ROUTE:code_generation").json()
    assert r["model"] == "anthropic/claude-sonnet-4-20250514" and r["route"] == "code_generation"
    sent = fake_provider.requests()[-1]
    assert sent["body"]["model"] == "Arch-Router"
    assert sent["body"]["temperature"] <= 0.1
    prompt = sent["body"]["messages"][0]["content"]
    routes = json.loads(prompt.rsplit("<routes>", 1)[1].split("</routes>")[0])
    assert {"name": "code_generation",
            "description": "generating new code, writing functions, or creating boilerplate"} in routes
    conversation = json.loads(prompt.rsplit("<conversation>", 1)[1].split("</conversation>")[0])
    assert conversation == [{"role": "user", "content": "please handle this ROUTE:code_generation"}]
    assert gw.decide("nothing to see ROUTE:other").json()["route"] is None


def test_llm_router_garbage_or_timeout_falls_back_and_does_not_pin(start_gateway, fake_provider):
    gw = llm_gateway(start_gateway, fake_provider)
    sid = str(uuid.uuid4())
    garbage = gw.decide("ROUTE:!garbage", sid).json()
    assert garbage["route"] is None and garbage["model"] == "openai/gpt-4o-mini" and garbage["pinned"] is False
    started = time.monotonic()
    slow = gw.decide("ROUTE:!slow", sid).json()
    assert time.monotonic() - started < 3  # the 1 s router timeout, not the fake's 5 s sleep
    assert slow["route"] is None and slow["pinned"] is False
    # Nothing was pinned, so the session routes (and pins) on its next request.
    routed = gw.decide("ROUTE:complex_reasoning", sid).json()
    assert routed["route"] == "complex_reasoning" and routed["pinned"] is False
    assert gw.decide("ROUTE:code_generation", sid).json()["pinned"] is True
    assert "router failed" in gw.output()


def test_router_error_type_is_what_llm_router_raises():
    from gateway.config import parse_config
    from gateway.routers.llm import LLMRouter

    cfg = parse_config({"model_providers": [{"model": "openai/a", "routing_preferences": [
        {"name": "x", "description": "y"}]}], "routing": {"model": "openai/a"}}, env={})
    with pytest.raises(RouterError):
        LLMRouter(cfg).parse("no idea")


def test_hundreds_of_messages_cost_the_embedded_router_bounded_time(seed_router):
    short = [{"role": "user", "content": "Write a Go function that reverses a string."}]
    long_chat = []
    for i in range(300):
        long_chat.append({"role": "user", "content": f"step {i}: " + "context " * 2000})
        long_chat.append({"role": "assistant", "content": "noted " * 2000})
    long_chat.append(short[0])
    seed_router.decide(long_chat)
    t0 = time.perf_counter()
    seed_router.decide(short)
    short_cost = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert seed_router.decide(long_chat) == "code_generation"  # the latest turn decides
    long_cost = time.perf_counter() - t0
    assert long_cost < max(50 * short_cost, 0.05)  # ~7 MB of history is not read
