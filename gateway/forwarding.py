"""Where bytes go out to providers: litellm calls, retries, failover, and OpenAI-shaped output.

`Forwarder.send` takes the chosen provider and the client's body and returns an
`Answer`: JSON bytes, or an async iterator of SSE event bytes whose first event
has already arrived (so every failure before the first byte can still be
retried, failed over, or answered with a proper status code).

Providers that speak OpenAI's format go through the byte relay (`relay.py`)
unless `gateway.openai_relay: false`; every other provider goes through
litellm, which translates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from .config import Config, Provider
from .errors import UpstreamError
from .litellm_loader import litellm
from .metrics import Metrics
from .relay import Relay, relay_url

log = logging.getLogger("gateway.forwarding")

# OpenAI chat-completions parameters passed through to the provider. Anything
# else the client sends goes to OpenAI-compatible providers as `extra_body`.
PASSTHROUGH = {
    "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "logit_bias", "user", "response_format", "seed", "tools", "tool_choice",
    "parallel_tool_calls", "logprobs", "top_logprobs", "stream_options", "reasoning_effort",
    "modalities", "audio", "prediction", "service_tier", "store", "metadata", "functions",
    "function_call", "web_search_options", "verbosity", "safety_identifier", "prompt_cache_key",
}
NOT_FORWARDED = {"model", "messages", "stream"}


@dataclass
class Answer:
    """What a provider gave back: `body` (JSON bytes) for a plain call, `stream` (SSE events) otherwise."""

    provider: Provider
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    attempts: int = 1
    upstream_seconds: float = 0.0  # the answering call: until the whole body, or the first event
    usage: dict[str, int] | None = None  # for a stream, filled in when its usage chunk passes by


def api_base(provider: Provider) -> str | None:
    """The base URL litellm expects: `.../v1` for OpenAI-format providers, the root for Anthropic."""
    if not provider.base_url:
        return None
    base = provider.base_url.rstrip("/")
    if provider.provider == "anthropic":
        return re.sub(r"/v1$", "", base)  # litellm appends /v1/messages itself
    if provider.speaks_openai and not re.search(r"/v\d+[a-z]*$", base):
        return base + "/v1"
    return base


def litellm_model(provider: Provider) -> str:
    # An OpenAI-compatible server at a custom URL (vLLM, Ollama, ...) is spoken to as OpenAI.
    if provider.speaks_openai and provider.base_url:
        return f"openai/{provider.model_name}"
    return f"{provider.provider}/{provider.model_name}"


def provider_kwargs(provider: Provider) -> dict[str, Any]:
    """litellm arguments that say where a provider is and how to authenticate to it."""
    kwargs: dict[str, Any] = {"model": litellm_model(provider)}
    if provider.access_key:
        kwargs["api_key"] = provider.access_key
    elif provider.speaks_openai and provider.base_url and not provider.access_key_source:
        # A keyless OpenAI-compatible server (Ollama, vLLM); the OpenAI client insists on some key.
        kwargs["api_key"] = "no-key-configured"
    base = api_base(provider)
    if base:
        kwargs["api_base"] = base
    if provider.headers:
        kwargs["extra_headers"] = dict(provider.headers)
    return kwargs


class Forwarder:
    """Sends chat requests to providers with retries and failover."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.relay = Relay() if config.openai_relay else None
        self.secrets = [p.access_key for p in config.providers if p.access_key]

    def scrub(self, text: str) -> str:
        """`text` with every configured provider key masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def candidates(self, first: Provider) -> list[Provider]:
        """The chosen provider, then its `fallbacks` (the default model if none are set), without repeats."""
        chain = [first]
        if first.fallbacks is None:
            chain.append(self.config.default_provider)
        else:
            chain += [p for p in map(self.config.find, first.fallbacks) if p is not None]
        seen: list[Provider] = []
        for p in chain:
            if all(p is not s for s in seen):
                seen.append(p)
        return seen

    async def send(self, provider: Provider, body: dict[str, Any], extra_headers: dict[str, str] | None = None) -> Answer:
        """Call `provider` (retrying, then failing over), returning the first answer that starts."""
        last: UpstreamError | None = None
        attempts = 0
        spent = 0.0  # time inside provider calls, failed ones included (backoff sleeps are ours)
        for i, candidate in enumerate(self.candidates(provider)):
            if i > 0:
                log.warning("failing over from %s to %s: %s", provider.model, candidate.model, last)
            for attempt in range(self.config.max_retries + 1):
                attempts += 1
                started = time.perf_counter()
                try:
                    answer = await self._call(candidate, body, extra_headers)
                except UpstreamError as exc:
                    spent += time.perf_counter() - started
                    last = exc
                    if self.metrics is not None:
                        self.metrics.upstream_errors.labels(candidate.model, str(exc.status)).inc()
                    if not exc.transient:
                        exc.upstream_seconds = spent
                        raise
                    if exc.code == "provider_key_missing":
                        break  # retrying cannot help; the next candidate might
                    if attempt < self.config.max_retries:
                        if self.metrics is not None:
                            self.metrics.retries.labels(candidate.model).inc()
                        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                    continue
                elapsed = time.perf_counter() - started
                answer.attempts = attempts
                answer.upstream_seconds = spent + elapsed
                if self.metrics is not None:
                    self.metrics.upstream_latency.labels(candidate.model, "true" if answer.stream else "false").observe(
                        elapsed)
                return answer
        assert last is not None
        last.upstream_seconds = spent
        raise last

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()

    async def _call(self, provider: Provider, body: dict[str, Any], extra_headers: dict[str, str] | None) -> Answer:
        if provider.access_key_source and not provider.access_key:
            raise UpstreamError(
                f"provider {provider.model} has no API key: set the environment variable "
                f"{provider.access_key_source.lstrip('$')} before starting the gateway",
                status=502, transient=True, code="provider_key_missing")
        url = relay_url(provider, api_base(provider)) if self.relay and provider.speaks_openai else None
        if url is not None:
            headers = {"Content-Type": "application/json", **provider.headers, **(extra_headers or {})}
            if provider.access_key:
                headers["Authorization"] = f"Bearer {provider.access_key}"
            try:
                raw, events, usage = await self.relay.send(provider, url, body, headers)  # type: ignore[union-attr]
            except UpstreamError as exc:
                exc.message = self.scrub(exc.message)
                raise
            return Answer(provider, body=raw, stream=events, usage=usage)
        kwargs = self._kwargs(provider, body, extra_headers)
        try:
            result = await litellm().acompletion(**kwargs)
            if not kwargs["stream"]:
                completion = completion_body(result)
                return Answer(provider, body=_dumps(completion), usage=completion.get("usage"))
            stream = aiter(result)
            first = await anext(stream)
        except StopAsyncIteration:
            raise UpstreamError(f"provider {provider.model} closed the stream without sending anything",
                                transient=True) from None
        except UpstreamError:
            raise
        except Exception as exc:
            raise self._translate(provider, exc) from None
        usage: dict[str, int] = {}
        return Answer(provider, stream=self._relay(provider, first, stream, usage), usage=usage)

    def _kwargs(self, provider: Provider, body: dict[str, Any], extra_headers: dict[str, str] | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            **provider_kwargs(provider),
            "messages": body["messages"],
            "stream": bool(body.get("stream")),
            "timeout": provider.timeout,
            "num_retries": 0,  # retries are ours, so they can fail over
            "max_retries": 0,
        }
        extra_body = {}
        for key, value in body.items():
            if key in NOT_FORWARDED:
                continue
            if key in PASSTHROUGH:
                kwargs[key] = value
            else:
                extra_body[key] = value
        if extra_body and provider.speaks_openai:
            kwargs["extra_body"] = extra_body
        if extra_headers:
            kwargs["extra_headers"] = {**kwargs.get("extra_headers", {}), **extra_headers}
        return kwargs

    def _translate(self, provider: Provider, exc: Exception) -> UpstreamError:
        """Map a litellm exception to the status a client should see."""
        ll = litellm()
        name = provider.model
        detail = self.scrub(_short_message(exc))
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ll.Timeout):
            return UpstreamError(f"provider {name} did not answer within {provider.timeout:g}s",
                                 status=504, code="upstream_timeout")
        if isinstance(exc, ll.RateLimitError):
            headers = {}
            retry_after = _header(exc, "retry-after")
            if retry_after:
                headers["Retry-After"] = retry_after
            return UpstreamError(f"provider {name} is rate limiting requests (429): {detail}",
                                 status=429, code="upstream_rate_limited", headers=headers)
        if isinstance(exc, ll.APIConnectionError) or "Connection error" in str(exc):
            return UpstreamError(f"could not connect to provider {name} at "
                                 f"{api_base(provider) or 'its default URL'}: {detail}",
                                 status=502, code="upstream_unreachable")
        if isinstance(exc, (ll.AuthenticationError, ll.PermissionDeniedError)):
            return UpstreamError(f"provider {name} rejected the gateway's API key ({status}); "
                                 f"check access_key in the config", status=502, transient=False,
                                 code="upstream_auth_failed")
        if isinstance(exc, (ll.BadRequestError, ll.UnprocessableEntityError)) and not isinstance(exc, ll.NotFoundError):
            return UpstreamError(f"provider {name} refused the request: {detail}", status=400,
                                 transient=False, code="upstream_bad_request")
        if isinstance(exc, ll.NotFoundError):
            return UpstreamError(f"provider {name} does not know this model or path (404): {detail}",
                                 status=502, transient=False, code="upstream_not_found")
        return UpstreamError(f"provider {name} failed ({status or 'error'}): {detail}", status=502)

    async def _relay(self, provider: Provider, first: Any, rest: AsyncIterator[Any],
                     usage: dict[str, int]) -> AsyncIterator[bytes]:
        """SSE events: litellm's chunks as OpenAI sends them, then [DONE], or an error event."""
        try:
            yield _event(chunk_body(first))
            async for chunk in rest:
                body = chunk_body(chunk)
                usage.update(body.get("usage") or {})
                yield _event(body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a stream broken midway: report it in-band, then end
            error = self._translate(provider, exc)
            log.warning("stream from %s broke: %s", provider.model, error.message)
            yield _event({"error": {"message": f"stream interrupted: {error.message}",
                                    "type": error.type, "code": "stream_interrupted"}})
            return
        finally:
            close = getattr(rest, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    pass
        yield b"data: [DONE]\n\n"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _event(value: Any) -> bytes:
    return b"data: " + _dumps(value) + b"\n\n"


def _short_message(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    text = re.sub(r"^litellm\.\w+: ", "", text)
    text = re.sub(r"^\w+: \w+Exception - ", "", text)
    return text[:300]


def _header(exc: Exception, name: str) -> str | None:
    for attr in ("litellm_response_headers", "headers"):
        headers = getattr(exc, attr, None)
        if headers:
            value = dict(headers).get(name) or dict(headers).get(name.title())
            if value:
                return str(value)
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "headers", None) is not None:
        return response.headers.get(name)
    return None


def _usage(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
    return {k: int(get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _message(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": getattr(msg, "role", None) or "assistant",
                           "content": getattr(msg, "content", None)}
    tool_calls = getattr(msg, "tool_calls", None)
    if tool_calls:
        out["tool_calls"] = [_tool_call(t) for t in tool_calls]
    for key in ("refusal", "function_call", "reasoning_content"):
        value = getattr(msg, key, None)
        if value:
            out[key] = value if isinstance(value, (str, dict)) else value.model_dump()
    return out


def _tool_call(call: Any, with_index: bool = False) -> dict[str, Any]:
    fn = getattr(call, "function", None)
    out: dict[str, Any] = {}
    if with_index:
        out["index"] = getattr(call, "index", 0) or 0
    if getattr(call, "id", None):
        out["id"] = call.id
    if getattr(call, "type", None) or not with_index:
        out["type"] = getattr(call, "type", None) or "function"
    if fn is not None:
        f: dict[str, Any] = {}
        if getattr(fn, "name", None):
            f["name"] = fn.name
        if getattr(fn, "arguments", None) is not None:
            f["arguments"] = fn.arguments
        out["function"] = f
    return out


def completion_body(result: Any) -> dict[str, Any]:
    """A litellm ModelResponse as the OpenAI API's chat.completion JSON (no litellm extras)."""
    body: dict[str, Any] = {
        "id": result.id, "object": "chat.completion", "created": result.created, "model": result.model,
        "choices": [{"index": c.index, "message": _message(c.message), "logprobs": None,
                     "finish_reason": c.finish_reason} for c in result.choices],
    }
    fingerprint = getattr(result, "system_fingerprint", None)
    if fingerprint:
        body["system_fingerprint"] = fingerprint
    usage = _usage(getattr(result, "usage", None))
    if usage:
        body["usage"] = usage
    return body


def chunk_body(chunk: Any) -> dict[str, Any]:
    """A litellm stream chunk as OpenAI's chat.completion.chunk JSON."""
    choices = []
    for c in chunk.choices:
        delta: dict[str, Any] = {}
        d = c.delta
        if getattr(d, "role", None):
            delta["role"] = d.role
        if getattr(d, "content", None) is not None:
            delta["content"] = d.content
        if getattr(d, "tool_calls", None):
            delta["tool_calls"] = [_tool_call(t, with_index=True) for t in d.tool_calls]
        if getattr(d, "refusal", None):
            delta["refusal"] = d.refusal
        choices.append({"index": c.index, "delta": delta, "logprobs": None, "finish_reason": c.finish_reason})
    body: dict[str, Any] = {"id": chunk.id, "object": "chat.completion.chunk", "created": chunk.created,
                            "model": chunk.model, "choices": choices}
    usage = _usage(getattr(chunk, "usage", None))
    if usage and not choices:
        body["usage"] = usage
    return body
