"""Routers: given a conversation, name the route whose intent it matches, or None.

Two implementations sit behind the `Router` interface: the embedded router
(`embedded.py`, in process, the default) and the LLM router (`llm.py`, an
Arch-Router-style model called through litellm). `build_router` picks one from
the config; nothing else in the gateway knows which one runs.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..config import Config


class Router(Protocol):
    name: str

    async def route(self, messages: list[dict[str, Any]]) -> str | None:
        """The matched route's name, or None when no route fits. Raises RouterError on failure."""


def build_router(config: Config) -> Router:
    """The router the config asks for: an LLM when `routing.model` is set, else the embedded one."""
    if config.routing.model:
        from .llm import LLMRouter

        return LLMRouter(config)
    from .embedded import EmbeddedRouter

    return EmbeddedRouter(config.routes)
