"""The litellm upstream: for a provider that speaks another wire format than the client.

- Chat Completions to Anthropic (or Gemini, ...): `litellm.acompletion`, its
  objects shaped back into OpenAI's JSON.
- Messages to an OpenAI-format provider: litellm's Anthropic-Messages
  interface, bridged over the provider's chat completions.
- Responses to a chat-only or Anthropic provider: `litellm.aresponses`,
  bridged over chat completions (or Anthropic's Messages).

litellm's exceptions become the same `UpstreamError`s the relay raises, through
`errors.upstream_failure`; its own retries are off so the failover loop above
decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, AsyncIterator

from ..config import DEFAULT_MAX_TOKENS, Provider
from ..errors import UpstreamError, upstream_bad_response, upstream_failure, upstream_timeout, upstream_unreachable
from ..litellm_loader import litellm, loaded
from . import Answer, Call, Wire
from .endpoints import api_base

log = logging.getLogger("gateway.upstream")

# OpenAI chat-completions parameters passed through to the provider. Anything
# else the client sends goes to OpenAI-compatible providers as `extra_body`.
CHAT_PASSTHROUGH = {
    "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "logit_bias", "user", "response_format", "seed", "tools", "tool_choice",
    "parallel_tool_calls", "logprobs", "top_logprobs", "stream_options", "reasoning_effort",
    "modalities", "audio", "prediction", "service_tier", "store", "metadata", "functions",
    "function_call", "web_search_options", "verbosity", "safety_identifier", "prompt_cache_key",
}
# Messages fields litellm's Anthropic interface takes as arguments; others are dropped by the bridge.
MESSAGES_FIELDS = {"max_tokens", "messages", "metadata", "stop_sequences", "system", "temperature", "thinking",
                   "tool_choice", "tools", "top_k", "top_p"}
# Responses fields the chat-completions bridge can carry (`previous_response_id` never reaches a
# bridge: api/responses.py refuses it, or skips the fallback, before any call).
RESPONSES_FIELDS = {"input", "instructions", "tools", "tool_choice", "temperature", "top_p", "max_output_tokens",
                    "parallel_tool_calls", "text", "reasoning", "metadata", "user", "truncation", "include",
                    "store"}
LITELLM_DEFAULT_MAX_TOKENS = DEFAULT_MAX_TOKENS  # a provider's max_tokens_default unless its config says otherwise


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


class LitellmUpstream:
    """Translates between wire formats with litellm."""

    def speaks(self, provider: Provider, wire: Wire) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def count_tokens(self, call: Call) -> int:
        """An estimate from litellm's tokenizer for the model (no provider call: most have no such endpoint)."""
        body = call.body
        system = body.get("system")
        texts = [system if isinstance(system, str) else " ".join(
            b.get("text", "") for b in system or [] if isinstance(b, dict))]
        for message in body.get("messages") or []:
            content = message.get("content")
            texts.append(content if isinstance(content, str) else json.dumps(content))
        if body.get("tools"):
            texts.append(json.dumps(body["tools"]))
        messages = [{"role": "user", "content": "\n".join(t for t in texts if t)}]
        await loaded()  # the import runs in a thread; only this request waits for it
        try:
            return int(litellm().token_counter(model=litellm_model(call.provider), messages=messages))
        except Exception as exc:
            raise translate_error(call.provider, exc) from None

    async def send(self, call: Call) -> Answer:
        provider, wire = call.provider, call.wire
        await loaded()  # the import runs in a thread; only this request waits for it
        kwargs = {**provider_kwargs(provider), "timeout": provider.timeout, "num_retries": 0, "max_retries": 0}
        extra_headers = {**kwargs.get("extra_headers", {}), **_passed_headers(call)}
        if extra_headers:
            kwargs["extra_headers"] = extra_headers
        stream = bool(call.body.get("stream"))
        try:
            if wire.name == "chat":
                result = _answered(provider, await litellm().acompletion(**_chat_kwargs(provider, call.body, kwargs)))
                if not stream:
                    completion = completion_body(result)
                    return Answer(provider, body=_dumps(completion), usage=wire.usage(completion))
                events: AsyncIterator[bytes] = _chat_events(provider, result)
            elif wire.name == "messages":
                result = _answered(provider, await litellm().anthropic_messages(**_messages_kwargs(call.body, kwargs)))
                if not stream:
                    body = result if isinstance(result, dict) else result.model_dump(mode="json")
                    return Answer(provider, body=_dumps(body), usage=wire.usage(body))
                events = _byte_events(result)
            else:
                result = _answered(provider, await litellm().aresponses(**_responses_kwargs(provider, call.body, kwargs)))
                if not stream:
                    body = result.model_dump(mode="json", exclude_none=True)
                    return Answer(provider, body=_dumps(body), usage=wire.usage(body))
                events = _object_events(result)
            answer = Answer(provider, usage={})
            first = await anext(events)
        except StopAsyncIteration:
            raise UpstreamError(f"provider {provider.model} closed the stream without sending anything") from None
        except UpstreamError:
            raise
        except Exception as exc:
            raise translate_error(provider, exc) from None
        answer.stream = _checked(answer, wire, first, events)
        return answer


def _answered(provider: Provider, result: Any) -> Any:
    """`result`, unless litellm returned nothing: it does that after a provider's 422 on OpenAI-format paths."""
    if result is None:
        raise _refused_without_answer(provider)
    return result


def _refused_without_answer(provider: Provider) -> UpstreamError:
    return UpstreamError(f"provider {provider.model} refused the request (litellm got no answer, as it does "
                         "for a 422 Unprocessable Entity); check the request's fields", status=400,
                         transient=False, code="upstream_bad_request")


def _passed_headers(call: Call) -> dict[str, str]:
    # Anthropic's version and beta headers mean nothing to another provider; the rest (traceparent) go on.
    return {k: v for k, v in call.headers.items() if not k.startswith("anthropic-")}


def _chat_kwargs(provider: Provider, body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**base, "messages": body["messages"], "stream": bool(body.get("stream"))}
    extra_body = {}
    for key, value in body.items():
        if key in ("model", "messages", "stream"):
            continue
        if key in CHAT_PASSTHROUGH:
            kwargs[key] = value
        else:
            extra_body[key] = value
    if extra_body and provider.speaks_openai:
        kwargs["extra_body"] = extra_body
    limit = provider.max_tokens_default
    if limit is not None and "max_tokens" not in kwargs and "max_completion_tokens" not in kwargs:
        # Else litellm sends Anthropic the model's whole context size (128000 for a model its map lacks),
        # which the real API refuses for a model with a smaller output limit.
        kwargs["max_tokens"] = limit
    return kwargs


def _messages_kwargs(body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**base, "stream": bool(body.get("stream"))}
    kwargs.update({k: v for k, v in body.items() if k in MESSAGES_FIELDS})
    return kwargs


def _responses_kwargs(provider: Provider, body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**base, "stream": bool(body.get("stream"))}
    kwargs.update({k: v for k, v in body.items() if k in RESPONSES_FIELDS})
    kwargs["store"] = False  # nothing is kept on a bridged path; the client sends the whole input
    if provider.speaks_openai:
        kwargs["use_chat_completions_api"] = True  # this provider has no /responses of its own
    if provider.max_tokens_default is not None:
        kwargs.setdefault("max_output_tokens", provider.max_tokens_default)
    return kwargs


async def _checked(answer: Answer, wire: Wire, first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The translated stream, usage noted; a failure midway ends it with an error event in the client's format."""
    usage = answer.usage if answer.usage is not None else {}
    provider = answer.provider
    event = first
    try:
        while True:
            for data in _event_data(event):
                found = wire.usage(data)
                if found:
                    usage.update(found)
                if wire.failed(data):
                    # litellm's own in-band error (its Messages bridge sends one): said in our words,
                    # with the key masked, like any other broken stream.
                    error = data.get("error")
                    detail = _masked(provider, str(error.get("message") if isinstance(error, dict) else error))
                    log.warning("stream from %s broke: %s", provider.model, detail)
                    answer.ending = "stream_interrupted"
                    yield wire.error_event("stream_interrupted", f"provider {provider.model} stream failed: "
                                                                 f"{_short_message(Exception(detail))}")
                    return
            yield event
            event = await anext(rest)
    except StopAsyncIteration:
        pass
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a stream broken midway: report it in-band, then end
        error = translate_error(answer.provider, exc)
        log.warning("stream from %s broke: %s", answer.provider.model, error.message)
        answer.ending = "stream_interrupted"
        yield wire.error_event("stream_interrupted", error.message)
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                pass


def _event_data(event: bytes) -> list[dict[str, Any]]:
    """The JSON objects in an event's data lines, read only when they may carry usage or an error."""
    if b"usage" not in event and b"error" not in event:
        return []
    out = []
    for line in event.split(b"\n"):
        if line.startswith(b"data: {"):
            try:
                data = json.loads(line[6:])
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
    return out


async def _chat_events(provider: Provider, result: Any) -> AsyncIterator[bytes]:
    """Chat chunks as SSE events; chunks that say nothing yet are held back until one does.

    Until then nothing has reached the client, so a stream that ends having
    said nothing (what litellm makes of a 200 that was no event stream) is
    raised as the provider failure it is, and the failover loop may retry it.
    """
    held: list[bytes] = []
    async for chunk in result:
        body = chunk_body(chunk)
        if held is not None:
            held.append(_event(body))
            if not _says_something(body):
                continue
            body_bytes, held = b"".join(held), None
            yield body_bytes
            continue
        yield _event(body)
    if held is not None:
        if not held:
            raise UpstreamError(f"provider {provider.model} closed the stream without sending anything")
        raise upstream_bad_response(provider.model, "answered a stream request with a stream that carried no "
                                                    "content, tool call or usage (was it an event stream?)")
    yield b"data: [DONE]\n\n"


def _says_something(chunk: dict[str, Any]) -> bool:
    """Whether a chat chunk carries anything a client would see (a role alone does not count)."""
    if chunk.get("usage"):
        return True
    for choice in chunk["choices"]:
        delta = choice["delta"]
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
        if choice.get("finish_reason") in ("length", "content_filter", "tool_calls"):
            return True  # an answer cut short or filtered may rightly carry nothing
    return False


async def _byte_events(result: Any) -> AsyncIterator[bytes]:
    async for piece in result:
        yield piece if isinstance(piece, bytes) else str(piece).encode()


async def _object_events(result: Any) -> AsyncIterator[bytes]:
    async for item in result:
        data = item.model_dump_json(exclude_none=True)
        kind = getattr(item.type, "value", item.type)  # litellm's event types are enums
        yield f"event: {kind}\ndata: {data}\n\n".encode()


def translate_error(provider: Provider, exc: Exception) -> UpstreamError:
    """Map a litellm exception to the error a client sees (the same mapping the relay uses).

    The provider's own key is masked here already, since a stream's error
    event is built from this after the failover loop (which masks every key)
    has handed the stream on.
    """
    ll = litellm()
    name = provider.model
    detail = _masked(provider, _short_message(exc))
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ll.Timeout) or _caused_by(exc, ("TimeoutException", "TimeoutError", "ServerTimeoutError")):
        return upstream_timeout(name, provider.timeout)
    if "'NoneType' object has no attribute" in str(exc) or "Unexpected response type: <class 'NoneType'>" in str(exc):
        # litellm's bridges trip over the nothing it returns after a 422: the same refusal as above.
        return _refused_without_answer(provider)
    if _caused_by(exc, ("JSONDecodeError",)) or "Empty or invalid response" in detail:
        return upstream_bad_response(name, f"answered with something that is not a JSON object ({detail[:80]})")
    if isinstance(exc, ll.RateLimitError):
        return upstream_failure(name, 429, detail, _header(exc, "retry-after"))
    if (isinstance(exc, ll.APIConnectionError) or "Connection error" in str(exc)
            or _caused_by(exc, ("ConnectError", "ClientConnectorError", "ConnectionRefusedError"))):
        return upstream_unreachable(name, api_base(provider) or "its default URL", detail)
    if _caused_by(exc, ("TypeError", "AttributeError", "KeyError", "IndexError")):
        # litellm tripped over the request's content while translating it: the same request
        # would trip again on retry, and failing over would re-pin the session for nothing.
        return UpstreamError(f"could not translate this request for provider {name}: {detail}; check the "
                             "request's fields against the API reference", status=400, transient=False,
                             code="untranslatable_request")
    if isinstance(exc, (ll.AuthenticationError, ll.PermissionDeniedError)):
        return upstream_failure(name, status if status in (401, 403) else 401, detail)
    if isinstance(exc, ll.NotFoundError):
        return upstream_failure(name, 404, detail)
    if isinstance(exc, (ll.BadRequestError, ll.UnprocessableEntityError)):
        return upstream_failure(name, status if isinstance(status, int) and 400 <= status < 500 else 400, detail)
    if isinstance(status, int) and 400 <= status < 600:  # any other status litellm carried over: mapped as is
        return upstream_failure(name, status, detail)
    return upstream_failure(name, 502, detail)


def _masked(provider: Provider, text: str) -> str:
    return text.replace(provider.access_key, "***") if provider.access_key else text


def _caused_by(exc: BaseException, names: tuple[str, ...]) -> bool:
    """Whether an exception of one of these class names is in `exc`'s chain (litellm wraps transport errors)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if any(cls.__name__ in names for cls in type(current).__mro__):
            return True
        current, seen = current.__cause__ or current.__context__, seen + 1
    return False


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _event(value: Any) -> bytes:
    return b"data: " + _dumps(value) + b"\n\n"


# What litellm adds to a provider's error for its own users: which exception to catch, its retry
# counts, its docs and colours. A gateway client can act on none of it.
_LITELLM_ADVICE = re.compile(r"\.? ?Handle with `litellm\.\w+`\.?|,? ?LiteLLM (?:Retried: \d+ times|Max Retries: \d+)"
                             r"|\s*(?:Received Model Group|Available Model Group Fallbacks)=.*$"
                             r"|\s*Learn more: https?://docs\.litellm\.ai\S*|\x1b\[[0-9;]*m")


def _short_message(exc: Exception) -> str:
    """The first line of a litellm error without its wrappers' names ("litellm.APIConnectionError: ...")
    and without litellm's advice to its own users ("Handle with `litellm.InternalServerError`")."""
    text = _LITELLM_ADVICE.sub("", str(exc).split("\n")[0]).strip()
    while True:
        shorter = re.sub(r"^(litellm\.)?\w+(Error|Exception): ", "", text)
        shorter = re.sub(r"^\w+(Exception|Error) - ", "", shorter)  # "AnthropicException - ", "AnthropicError - "
        if shorter == text:
            return text[:300]
        text = shorter


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


# -- litellm's chat objects as OpenAI's JSON -----------------------------------


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
