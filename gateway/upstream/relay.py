"""The byte relay: for a provider that already speaks the client's wire format.

Chat Completions to OpenAI-compatible servers, Messages to Anthropic, Responses
to OpenAI: there is nothing to translate, so the client's body goes out with
only `model` replaced (and the provider's own key set), and the answer's bytes
come back. litellm would rebuild every response and chunk as Python objects,
which costs far more per call (README, Performance). Each streamed event is
still checked (its data must be JSON, or chat's `[DONE]`), so a broken or
garbled stream ends in a clean error event in the client's format.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import aiohttp

from ..config import Provider
from ..errors import (UpstreamError, upstream_bad_response, upstream_failure, upstream_timeout,
                      upstream_unreachable)
from . import Answer, Call, Wire
from .endpoints import native_wire, relay_url

ANTHROPIC_VERSION = "2023-06-01"


class RelayUpstream:
    """A keep-alive aiohttp session forwarding requests whose format the provider speaks."""

    def __init__(self, chat: bool = True) -> None:
        self.chat = chat  # False: chat requests go through litellm (`gateway.openai_relay: false`)
        self._session: aiohttp.ClientSession | None = None

    def speaks(self, provider: Provider, wire: Wire) -> bool:
        if wire.name == "chat" and not self.chat:
            return False
        return native_wire(provider, wire.name) and relay_url(provider, wire.name) is not None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def headers(self, call: Call) -> dict[str, str]:
        provider = call.provider
        headers = {"Content-Type": "application/json", **provider.headers, **call.headers}
        if call.wire.name == "messages":
            headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
            if provider.access_key:
                headers["x-api-key"] = provider.access_key
        elif provider.access_key:
            headers["Authorization"] = f"Bearer {provider.access_key}"
        return headers

    async def send(self, call: Call) -> Answer:
        provider, wire = call.provider, call.wire
        url = relay_url(provider, wire.name)
        payload = json.dumps({**call.body, "model": provider.model_name}, separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(provider.timeout, 10.0),
                                        sock_read=provider.timeout)
        try:
            response = await self._client().post(url, data=payload, headers=self.headers(call), timeout=timeout)
        except asyncio.TimeoutError:
            raise upstream_timeout(provider.model, provider.timeout) from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(provider.model, str(url), type(exc).__name__) from None
        answer = Answer(provider)
        try:
            if response.status != 200:
                raise await _status_error(provider, response)
            if not call.body.get("stream"):
                answer.body = await response.read()
                answer.usage = wire.usage(_check_json(provider, answer.body))
                response.release()
                return answer
            answer.usage = {}
            events = _events(answer, wire, response)
            first = await anext(events)  # failures before the first byte can still fail over
        except asyncio.TimeoutError:
            response.close()
            raise upstream_timeout(provider.model, provider.timeout) from None
        except aiohttp.ClientError as exc:
            response.close()
            raise UpstreamError(f"provider {provider.model} broke the connection: {type(exc).__name__}") from None
        except StopAsyncIteration:
            response.close()
            raise UpstreamError(f"provider {provider.model} closed the stream without sending anything") from None
        except BaseException:
            response.close()
            raise
        answer.stream = _prepend(first, events)
        return answer


    async def count_tokens(self, call: Call) -> int:
        provider = call.provider
        url = f"{relay_url(provider, 'messages')}/count_tokens"
        fields = {k: v for k, v in call.body.items() if k not in ("stream", "max_tokens", "metadata")}
        payload = json.dumps({**fields, "model": provider.model_name}, separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(total=provider.timeout)
        try:
            async with self._client().post(url, data=payload, headers=self.headers(call), timeout=timeout) as response:
                if response.status != 200:
                    raise await _status_error(provider, response)
                count = _check_json(provider, await response.read()).get("input_tokens")
        except asyncio.TimeoutError:
            raise upstream_timeout(provider.model, provider.timeout) from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(provider.model, url, type(exc).__name__) from None
        if not isinstance(count, int):
            raise upstream_bad_response(provider.model, "answered count_tokens without an `input_tokens` number")
        return count


def _check_json(provider: Provider, raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            return parsed
    except ValueError:
        pass
    raise upstream_bad_response(provider.model, f"answered with something that is not a JSON object ({raw[:60]!r})")


async def _status_error(provider: Provider, response: aiohttp.ClientResponse) -> UpstreamError:
    raw = await response.read()
    response.release()
    try:
        error = json.loads(raw)["error"]
        detail = error["message"] if isinstance(error, dict) else str(error)
    except (ValueError, KeyError, TypeError):
        detail = raw[:200].decode("utf-8", "replace")
    return upstream_failure(provider.model, response.status, detail, response.headers.get("retry-after"))


async def _events(answer: Answer, wire: Wire, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Checked SSE events from the response, ending with the format's last event or an error event.

    Events that arrive in one network read are yielded together, so a burst of
    small chunks costs one write to the client, not one per chunk. Until the
    first event has been yielded nothing has reached the client, so a failure
    then (an answer that is no event stream, an error as the first event) is
    raised as an UpstreamError, which the failover loop may retry.
    """
    model = answer.provider.model
    usage = answer.usage if answer.usage is not None else {}
    buffer = b""
    started = done = broken = False
    try:
        async for piece in response.content.iter_any():
            buffer += piece.replace(b"\r\n", b"\n") if b"\r" in piece else piece
            if b"\n\n" not in buffer:
                if not started and len(buffer) > _FIRST_EVENT_LIMIT:
                    raise _not_a_stream(answer, response, buffer)
                continue
            *events, buffer = buffer.split(b"\n\n")
            out = []
            for event in events:
                data = b"".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
                if not data:
                    if event.startswith(b":") and started:
                        out.append(event + b"\n\n")  # a keep-alive comment: the client's idle timers want it too
                    continue
                if data == b"[DONE]":
                    done = wire.finished(None)
                    out.append(event + b"\n\n")
                    if done:
                        break
                    continue
                try:
                    parsed = json.loads(data)
                except ValueError:
                    if not (started or out):
                        raise _not_a_stream(answer, response, event) from None
                    out.append(wire.error_event("stream_interrupted",
                                                f"provider {model} sent an unreadable stream event"))
                    broken = True
                    break
                if isinstance(parsed, dict) and wire.failed(parsed) and not (started or out):
                    raise upstream_failure(model, 502, _error_text(parsed))
                out.append(event + b"\n\n")
                if isinstance(parsed, dict):
                    found = wire.usage(parsed)
                    if found:
                        usage.update(found)
                    if wire.failed(parsed):
                        broken = True
                        break
                    if wire.finished(parsed):
                        done = True
                        break
            if out:
                started = True
                yield b"".join(out)
            if done or broken:
                break
        else:
            if not started:
                raise _not_a_stream(answer, response, buffer)
            yield wire.error_event("stream_interrupted", f"provider {model} closed the stream before it finished")
            broken = True
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        if not started:
            raise
        yield wire.error_event("stream_interrupted", f"provider {model} stream failed: {type(exc).__name__}")
        broken = True
    finally:
        if broken:
            answer.ending = "stream_interrupted"
        if done:
            response.release()  # back to the keep-alive pool
        else:
            response.close()  # cancelled or broken: drop the connection, so the provider stops too


_FIRST_EVENT_LIMIT = 1 << 20  # bytes without one event boundary: whatever this is, it is not an event stream


def _not_a_stream(answer: Answer, response: aiohttp.ClientResponse, start: bytes) -> UpstreamError:
    kind = response.headers.get("content-type", "no content type")
    return upstream_bad_response(answer.provider.model, f"answered a stream request with something that is not an "
                                                        f"event stream ({kind}: {start[:60]!r})")


def _error_text(event: dict[str, Any]) -> str:
    """The message of an in-band error event, whichever format's shape it has."""
    error = event.get("error") or (event.get("response") or {}).get("error") or event
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)[:300]
    return str(error)[:300]


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
