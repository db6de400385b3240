"""Where bytes go out to providers: one interface, two implementations, one failover loop.

An `Upstream` takes a `Call` (a provider, the client's body in one wire format,
extra headers) and returns an `Answer` that has started: a whole JSON body, or
an SSE stream whose first event has already arrived, so every failure before
the client's first byte can still be retried or failed over. Failures are
`UpstreamError`s built by `errors.upstream_failure` and friends.

- `relay.RelayUpstream`: the provider speaks the client's format; the body goes
  out with only `model` replaced and the answer's bytes come back.
- `translate.LitellmUpstream`: the formats differ; litellm translates.
- `failover.Forwarder`: picks the upstream per provider, retries, fails over.

What differs between wire formats (where a stream ends, where usage sits, how
an in-band error looks) is a `Wire`, defined by each API surface in `api/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from ..config import Provider


class Wire(Protocol):
    """What the upstream layer needs to know about one client wire format."""

    name: str  # "chat", "messages" or "responses"

    def finished(self, event: dict[str, Any] | None) -> bool:
        """True for the event that ends a stream (`None` is chat's `[DONE]`)."""

    def failed(self, event: dict[str, Any]) -> bool:
        """True for an in-band error event sent by the provider."""

    def usage(self, body: dict[str, Any]) -> dict[str, int] | None:
        """Token counts in a body or stream event, as prompt_tokens/completion_tokens, if any."""

    def error_event(self, code: str, message: str) -> bytes:
        """The SSE event that ends a broken stream, in this format."""


def token_usage(body: dict[str, Any], inside: str | None, prompt: str, completion: str) -> dict[str, int] | None:
    """The token counts in `body["usage"]` (or `body[inside]["usage"]`) as prompt_tokens/completion_tokens.

    Zero counts are left out: a stream may announce 0 before the real count
    arrives, and must not overwrite it.
    """
    usage = body.get("usage")
    if not isinstance(usage, dict) and inside is not None:
        nested = body.get(inside)
        usage = nested.get("usage") if isinstance(nested, dict) else None
    if not isinstance(usage, dict):
        return None
    out = {}
    for theirs, ours in ((prompt, "prompt_tokens"), (completion, "completion_tokens")):
        value = usage.get(theirs)
        if isinstance(value, int) and not isinstance(value, bool) and value:
            out[ours] = value
    return out or None


@dataclass
class Call:
    """One attempt's input: which provider, the client's body and its wire format."""

    provider: Provider
    wire: Wire
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # passed on to the provider (traceparent, anthropic-*)


@dataclass
class Answer:
    """What a provider gave back: `body` (JSON bytes) for a plain call, `stream` (SSE event bytes) otherwise.

    For a stream, `usage` fills in as events pass and `ending` becomes
    "stream_interrupted" if it ends in an error event.
    """

    provider: Provider
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    attempts: int = 1
    upstream_seconds: float = 0.0  # the answering call: until the whole body, or the first event
    usage: dict[str, int] | None = None
    ending: str | None = None


class Upstream(Protocol):
    """Sends one call to one provider, no retries. Raises UpstreamError."""

    def speaks(self, provider: Provider, wire: Wire) -> bool:
        """Whether this upstream can carry `wire` to `provider`."""

    async def send(self, call: Call) -> Answer:
        """The provider's answer, started; UpstreamError if it failed before its first byte."""

    async def count_tokens(self, call: Call) -> int:
        """Input tokens of a Messages request (`call.body`) for `call.provider`."""

    async def close(self) -> None:
        """Release connections."""
