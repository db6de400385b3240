"""The one decision path: (request, session) -> which model serves it.

Every HTTP endpoint, whatever its wire format, turns its request into an `Ask`
and calls `Decider.decide`. Pin lookup, routing, falling back to
the request's or the default model, and pin writing happen here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from .config import Config, Provider
from .errors import BadRequest, RouterError
from .pins import Pin, PinStore
from .routers import Router

log = logging.getLogger("gateway.decision")
# Conversations remembered for route_on_user_only live beside session pins; the space
# keeps them apart, since no valid session id contains one.
CONVERSATION_PREFIX = "conversation "


class Ask:
    """What the decision needs from a request, whatever its wire format.

    `messages`: chat-shaped turns for the router, what the user asked and what
    the assistant said, as text (no tool output, no system prompt). `opening`:
    the system prompt and first user turn, identifying the conversation for
    implicit sessions. Both may be given as functions, computed only if used:
    a pinned request never runs the router, so it never pays for reading a
    long conversation. `any_model` says an unknown `model` is the client's own
    default (an agent CLI's), to be routed like no model at all, rather than a
    typo to refuse. `tool_turn` says the latest turn only carries tool
    results, not a new question.
    """

    __slots__ = ("_messages", "model", "any_model", "_opening", "tool_turn")

    def __init__(self, messages: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]], model: Any = None,
                 any_model: bool = False, opening: str | Callable[[], str] = "", tool_turn: bool = False) -> None:
        self._messages = messages
        self.model = model
        self.any_model = any_model
        self._opening = opening
        self.tool_turn = tool_turn

    @property
    def messages(self) -> list[dict[str, Any]]:
        if callable(self._messages):
            self._messages = self._messages()
        return self._messages

    @property
    def opening(self) -> str:
        if callable(self._opening):
            self._opening = self._opening()
        return self._opening


@dataclass(frozen=True)
class Decision:
    """The outcome for one request. `outcome` is routed, no_route, pinned, kept or router_failed.

    `kept`: no session, but the turn only carried tool results, so the
    conversation's previous decision was kept (`routing.route_on_user_only`).
    """

    provider: Provider
    route: str | None
    pinned: bool
    session_id: str | None
    outcome: str

    @property
    def model(self) -> str:
        return self.provider.model


@dataclass
class DecisionStats:
    """Counters an operator (and the tests) can read."""

    routed: int = 0
    no_route: int = 0
    hits: int = 0  # session requests whose pin was in the store
    misses: int = 0  # session requests that found no pin there
    router_failed: int = 0
    store_errors: int = 0


class Decider:
    """Turns a request into a Decision, sharing pins across both endpoints."""

    def __init__(self, config: Config, router: Router, store: PinStore,
                 observe_router: Callable[[float], None] | None = None) -> None:
        self.config = config
        self.router = router
        self.store = store
        self.stats = DecisionStats()
        self._observe_router = observe_router  # e.g. a latency histogram
        # In-process single flight: concurrent requests of a session wait for one
        # pin lookup (and routing run); across processes put_if_absent settles the
        # race. A flight ends with (decision, whether the pin was found), or None
        # when its request failed or was cancelled: the waiters then decide again.
        self._inflight: dict[str, asyncio.Future[tuple[Decision, bool] | None]] = {}

    def requested_provider(self, ask: Ask) -> Provider | None:
        """The provider the request's `model` names; BadRequest if it names nothing configured."""
        model = ask.model
        if model is None or model == "":
            return None
        if not isinstance(model, str):
            raise BadRequest("`model` must be a string naming a configured model", param="model")
        provider = self.config.find(model)
        if provider is None and ask.any_model:
            return None
        if provider is None:
            raise BadRequest(
                f"model {model!r} is not configured on this gateway; use one of: "
                f"{', '.join(self.config.model_names())} (or omit `model` to let the gateway choose)",
                code="model_not_found", param="model")
        return provider

    async def decide(self, ask: Ask, session_key: str | None = None, session_id: str | None = None,
                     conversation_key: str | None = None) -> Decision:
        """Decide which model serves `ask`; `session_key` is the tenant-scoped pin key.

        `conversation_key` (tenant-scoped too) is given for requests without a
        session when `routing.route_on_user_only` is on.
        """
        requested = self.requested_provider(ask)
        if session_key is None:
            if conversation_key is not None:
                return await self._follow_conversation(ask, requested, CONVERSATION_PREFIX + conversation_key)
            return await self._route(ask, requested, None)

        while True:
            waiting = self._inflight.get(session_key)
            if waiting is None:
                return await self._lead(ask, requested, session_key, session_id)
            first = await asyncio.shield(waiting)
            if first is not None:
                return await self._follow(ask, requested, session_id, *first)
            # The request in flight failed or was cancelled: loop, and one of its waiters leads.

    async def _lead(self, ask: Ask, requested: Provider | None, key: str, session_id: str | None) -> Decision:
        """Look the session's pin up, or route and pin it, while its other requests wait for the answer."""
        future: asyncio.Future[tuple[Decision, bool] | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            pin = await self._get_pin(key)
            if pin is not None:
                self.stats.hits += 1
                decision = Decision(self.config.find(pin.model), pin.route, True, session_id, "pinned")  # type: ignore[arg-type]
            else:
                self.stats.misses += 1
                decision = await self._route(ask, requested, session_id)
                if decision.outcome != "router_failed":
                    decision = await self._pin(key, decision)
            future.set_result((decision, pin is not None))
            return decision
        finally:
            if not future.done():  # failed or cancelled: the waiters must not inherit that
                future.set_result(None)
            del self._inflight[key]

    async def _follow(self, ask: Ask, requested: Provider | None, session_id: str | None,
                      first: Decision, found: bool) -> Decision:
        """A request that waited for its session's flight: the same model, as pinned."""
        if found:
            self.stats.hits += 1
        else:
            self.stats.misses += 1
        if first.outcome == "router_failed":  # nothing was pinned; this request routes for itself
            return await self._route(ask, requested, session_id)
        return Decision(first.provider, first.route, True, session_id, "pinned")

    async def answered(self, session_key: str | None, decision: Decision, provider: Provider) -> None:
        """Told which provider answered; after a failover the session follows it (re-pinned)."""
        if session_key is None or provider is decision.provider or decision.outcome == "router_failed":
            return  # nothing was pinned after a router failure (rule 5), so nothing to move
        now = time.time()
        try:
            await self.store.replace(session_key, Pin(provider.model, decision.route, now, now))
        except Exception as exc:  # a store outage must not fail a request that succeeded
            self.stats.store_errors += 1
            log.warning("pin store unavailable while re-pinning: %s", exc)

    async def _follow_conversation(self, ask: Ask, requested: Provider | None, key: str) -> Decision:
        """Without a session: a turn of tool results keeps the conversation's last decision; others route."""
        if ask.tool_turn:
            pin = await self._get_pin(key)
            if pin is not None:
                return Decision(self.config.find(pin.model), pin.route, False, None, "kept")  # type: ignore[arg-type]
        decision = await self._route(ask, requested, None)
        if decision.outcome != "router_failed":
            now = time.time()
            try:
                await self.store.replace(key, Pin(decision.model, decision.route, now, now))
            except Exception as exc:
                self.stats.store_errors += 1
                log.debug("pin store write failed, conversation not remembered: %s", exc)
        return decision

    async def unpin(self, session_key: str) -> bool:
        return await self.store.delete(session_key)

    async def _get_pin(self, key: str) -> Pin | None:
        try:
            pin = await self.store.get(key)
        except Exception as exc:
            self.stats.store_errors += 1
            log.debug("pin store read failed, routing without a pin: %s", exc)
            return None
        if pin is not None and self.config.find(pin.model) is None:
            # Pinned to a model that is no longer configured: drop it, route afresh.
            try:
                await self.store.delete(key)
            except Exception as exc:  # fail open: this request routes afresh; the stale pin expires by its TTL
                self.stats.store_errors += 1
                log.debug("pin store delete failed, stale pin left to expire: %s", exc)
            return None
        return pin

    async def _pin(self, key: str, decision: Decision) -> Decision:
        now = time.time()
        ours = Pin(decision.model, decision.route, now, now)
        try:
            stored = await self.store.put_if_absent(key, ours)
        except Exception as exc:  # fail open: serve the decision, unpinned
            self.stats.store_errors += 1
            log.debug("pin store write failed, serving unpinned: %s", exc)
            return decision
        provider = self.config.find(stored.model) if stored is not ours else None
        if provider is not None:
            # Another request (here or on another replica) pinned this session
            # between our lookup and our write: follow its pin, as pinned.
            return Decision(provider, stored.route, True, decision.session_id, "pinned")
        return decision

    async def _route(self, ask: Ask, requested: Provider | None, session_id: str | None) -> Decision:
        fallback = requested or self.config.default_provider
        if not self.config.routes:
            self.stats.no_route += 1
            return Decision(fallback, None, False, session_id, "no_route")
        started = time.perf_counter()
        try:
            route_name = await self.router.route(ask.messages)
        except RouterError as exc:
            self.stats.router_failed += 1
            log.warning("router failed, serving %s unpinned: %s", fallback.model, exc)
            return Decision(fallback, None, False, session_id, "router_failed")
        finally:
            if self._observe_router is not None:
                self._observe_router(time.perf_counter() - started)
        route = self.config.route(route_name)
        if route is None:
            self.stats.no_route += 1
            return Decision(fallback, None, False, session_id, "no_route")
        self.stats.routed += 1
        return Decision(self.config.find(route.model), route.name, False, session_id, "routed")  # type: ignore[arg-type]
