"""Where each provider lives and which wire formats it speaks natively."""

from __future__ import annotations

import re

from ..config import Provider

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
_VERSIONED = re.compile(r"/v\d+[a-z]*$")


def api_base(provider: Provider) -> str | None:
    """The base URL litellm expects: `.../v1` for OpenAI-format providers, the root for Anthropic."""
    if not provider.base_url:
        return None
    base = provider.base_url.rstrip("/")
    if provider.provider == "anthropic":
        return re.sub(r"/v1$", "", base)  # litellm appends /v1/messages itself
    if provider.speaks_openai and not _VERSIONED.search(base):
        return base + "/v1"
    return base


def native_wire(provider: Provider, wire: str) -> bool:
    """Whether `provider` speaks `wire` itself, so the request can be relayed untranslated."""
    if wire == "chat":
        return provider.speaks_openai
    if wire == "messages":
        return provider.provider == "anthropic"
    if wire == "responses":
        return provider.speaks_responses
    return False


def relay_url(provider: Provider, wire: str = "chat") -> str | None:
    """The URL a relayed `wire` request goes to, or None when only litellm knows where this provider lives."""
    base = api_base(provider)
    if wire == "messages":
        return (base or ANTHROPIC_URL) + "/v1/messages"
    if base is None:
        if provider.provider != "openai":
            return None
        base = OPENAI_URL
    return base + ("/responses" if wire == "responses" else "/chat/completions")
