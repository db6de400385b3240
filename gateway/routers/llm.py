"""The LLM router: asks a model (Arch-Router, or any chat model) which route fits.

The prompt follows Arch-Router's published format: the routes as a JSON list
of {name, description} inside <routes>, the recent conversation as a JSON list
of {role, content} inside <conversation>, and an answer of {"route": "<name>"}
or {"route": "other"}. Any failure (timeout, error, unparsable answer, a route
that does not exist) raises RouterError, so the decision falls back and does
not pin.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from ..config import LITELLM_PROVIDERS, Config, Provider
from ..conversation import recent_turns
from ..errors import RouterError
from ..upstream.translate import provider_kwargs
from ..litellm_loader import loaded, start_import

# Arch-Router reads 8k tokens; at ~4 characters a token this keeps the prompt well inside.
CONVERSATION_BUDGET_CHARS = 12_000

PROMPT = """You are a routing assistant. Your job is to pick the route that best fits the user's latest intent.

The available routes, as a JSON list inside <routes></routes>:
<routes>
{routes}
</routes>

The conversation so far, as a JSON list inside <conversation></conversation>:
<conversation>
{conversation}
</conversation>

Rules:
1. Decide on the user's latest request; use earlier turns only as context.
2. If the latest request fits none of the routes, or the user's need is already met, answer {{"route": "other"}}.
3. Otherwise answer with the exact name of the best-fitting route, e.g. {{"route": "route_name"}}.

Answer with the JSON object only."""


class LLMRouter:
    """Routes by asking an LLM through litellm, with a hard timeout."""

    name = "llm"

    def __init__(self, config: Config) -> None:
        self.routes = config.routes
        self.route_names = {r.name for r in config.routes}
        self.timeout = config.routing.router_timeout
        self.provider = _router_provider(config)
        self._routes_json = json.dumps([{"name": r.name, "description": r.description} for r in self.routes])
        start_import()  # seconds, in a thread: the first routed request waits for it, nothing else does

    def prompt(self, messages: list[dict[str, Any]]) -> str:
        conversation = json.dumps(recent_turns(messages, CONVERSATION_BUDGET_CHARS), ensure_ascii=False)
        return PROMPT.format(routes=self._routes_json, conversation=conversation)

    async def route(self, messages: list[dict[str, Any]]) -> str | None:
        p = self.provider
        kwargs: dict[str, Any] = {
            **provider_kwargs(p), "messages": [{"role": "user", "content": self.prompt(messages)}],
            "temperature": 0.01, "max_tokens": 64, "timeout": self.timeout, "num_retries": 0, "max_retries": 0,
        }
        llm = await loaded()  # before the timeout starts: the import is not the router model's time
        try:
            result = await asyncio.wait_for(llm.acompletion(**kwargs), self.timeout)
        except asyncio.TimeoutError:
            raise RouterError(f"router model {p.model} did not answer within {self.timeout:g}s") from None
        except Exception as exc:
            raise RouterError(f"router model {p.model} failed: {str(exc).splitlines()[0][:200]}") from None
        text = (result.choices[0].message.content or "") if result.choices else ""
        return self.parse(text)

    def parse(self, text: str) -> str | None:
        """The route named by an answer; tolerant of fences, quotes and prose around it."""
        name = parse_route_answer(text, self.route_names)
        if name is None:
            raise RouterError(f"router model {self.provider.model} gave an answer naming no route: {text[:120]!r}")
        return None if name == "other" else name


def parse_route_answer(text: str, routes: set[str]) -> str | None:
    """'other', a name from `routes`, or None when the answer cannot be understood."""
    cleaned = re.sub(r"```[a-zA-Z]*", "", text).strip()
    match = re.search(r"\{.*?\}", cleaned, re.S)
    if match:
        blob = match.group(0)
        for candidate in (blob, blob.replace("'", '"')):
            try:
                value = json.loads(candidate).get("route")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(value, str) and (value in routes or value == "other"):
                return value
    quoted = re.search(r"""route["']?\s*[:=]\s*["']?([\w.-]+)""", cleaned)
    if quoted and (quoted.group(1) in routes or quoted.group(1) == "other"):
        return quoted.group(1)
    bare = cleaned.strip().strip("\"'` .").strip()
    if bare in routes or bare == "other":
        return bare
    named = [r for r in routes if re.search(rf"\b{re.escape(r)}\b", cleaned)]
    return named[0] if len(named) == 1 else None


def _router_provider(config: Config) -> Provider:
    """Where the router model lives: routing.llm_provider, a matching model entry, or its provider prefix.

    The model name reaches the server as written, less a litellm provider
    prefix: Ollama knows Arch-Router as `hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M`
    and vLLM as `katanemo/Arch-Router-1.5B`, slashes included.
    """
    routing = config.routing
    assert routing.model is not None
    host = config.find(routing.llm_provider) if routing.llm_provider else config.find(routing.model)
    if host is None:  # a provider prefix (config.py checks it), e.g. ollama/arch-router; none means OpenAI
        prefix, _, name = routing.model.partition("/")
        return Provider(model=routing.model, provider=prefix if name else "openai", model_name=name or prefix)
    if routing.llm_provider and routing.model not in (host.model, host.model_name, host.name):
        # The provider entry gives the URL and key; the router model is named separately.
        return Provider(model=routing.model, provider=host.provider, model_name=served_name(routing.model),
                        access_key=host.access_key, base_url=host.base_url, headers=host.headers)
    return host


def served_name(model: str) -> str:
    """`model` without a leading litellm provider prefix (`ollama/`, `openai/`, ...), otherwise unchanged."""
    prefix, _, rest = model.partition("/")
    return rest if rest and prefix in LITELLM_PROVIDERS else model
