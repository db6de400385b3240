"""The direct byte relay for providers that already speak OpenAI's wire format.

litellm rebuilds every response and stream chunk as Python objects, which
costs milliseconds per call (see README, Performance). For OpenAI and
OpenAI-compatible servers (vLLM, Ollama, ... at a `base_url`) there is nothing
to translate, so this path sends the client's body with only `model` replaced
and relays the answer's bytes. Each streamed event is still checked (it must be
JSON or `[DONE]`), so a broken or garbled stream ends in a clean error event.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import aiohttp

from .config import Provider
from .errors import UpstreamError

OPENAI_URL = "https://api.openai.com/v1"


def relay_url(provider: Provider, base: str | None) -> str | None:
    """The chat-completions URL, or None when only litellm knows where this provider lives."""
    if base:
        return base.rstrip("/") + "/chat/completions"
    if provider.provider == "openai":
        return OPENAI_URL + "/chat/completions"
    return None


class Relay:
    """A keep-alive aiohttp session that forwards OpenAI-format requests as bytes."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, provider: Provider, url: str, body: dict[str, Any],
                   headers: dict[str, str]) -> tuple[bytes | None, AsyncIterator[bytes] | None, dict | None]:
        """POST `body` for `provider`: (JSON bytes, None, usage) or (None, SSE event bytes, usage).

        A stream's usage dict is filled in when its usage chunk passes by.
        """
        payload = json.dumps({**body, "model": provider.model_name}, separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(provider.timeout, 10.0),
                                        sock_read=provider.timeout)
        try:
            response = await self._client().post(url, data=payload, headers=headers, timeout=timeout)
        except asyncio.TimeoutError:
            raise UpstreamError(f"provider {provider.model} did not answer within {provider.timeout:g}s",
                                status=504, code="upstream_timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"could not connect to provider {provider.model} at {url}: {type(exc).__name__}",
                                status=502, code="upstream_unreachable") from None
        try:
            if response.status != 200:
                raise await _status_error(provider, response)
            if not body.get("stream"):
                raw = await response.read()
                usage = _check_json(provider, raw).get("usage")
                response.release()
                return raw, None, usage if isinstance(usage, dict) else None
            usage: dict[str, int] = {}
            events = _events(provider, response, usage)
            first = await anext(events)  # failures before the first byte can still fail over
        except asyncio.TimeoutError:
            response.close()
            raise UpstreamError(f"provider {provider.model} did not answer within {provider.timeout:g}s",
                                status=504, code="upstream_timeout") from None
        except aiohttp.ClientError as exc:
            response.close()
            raise UpstreamError(f"provider {provider.model} broke the connection: {type(exc).__name__}",
                                status=502) from None
        except StopAsyncIteration:
            response.close()
            raise UpstreamError(f"provider {provider.model} closed the stream without sending anything") from None
        except BaseException:
            response.close()
            raise
        return None, _prepend(first, events), usage


def _check_json(provider: Provider, raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            return parsed
    except ValueError:
        pass
    raise UpstreamError(f"provider {provider.model} answered with something that is not a JSON object "
                        f"({raw[:60]!r})", status=502, code="upstream_bad_response")


async def _status_error(provider: Provider, response: aiohttp.ClientResponse) -> UpstreamError:
    raw = await response.read()
    response.release()
    try:
        detail = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = raw[:200].decode("utf-8", "replace")
    name, status = provider.model, response.status
    if status == 429:
        retry = response.headers.get("retry-after")
        return UpstreamError(f"provider {name} is rate limiting requests (429): {detail}", status=429,
                             code="upstream_rate_limited", headers={"Retry-After": retry} if retry else None)
    if status >= 500:
        return UpstreamError(f"provider {name} failed ({status}): {detail}", status=502)
    if status in (401, 403):
        return UpstreamError(f"provider {name} rejected the gateway's API key ({status}); check access_key "
                             f"in the config", status=502, transient=False, code="upstream_auth_failed")
    if status == 404:
        return UpstreamError(f"provider {name} does not know this model or path (404): {detail}", status=502,
                             transient=False, code="upstream_not_found")
    return UpstreamError(f"provider {name} refused the request ({status}): {detail}", status=400,
                         transient=False, code="upstream_bad_request")


async def _events(provider: Provider, response: aiohttp.ClientResponse,
                  usage: dict[str, int]) -> AsyncIterator[bytes]:
    """Checked SSE events from the response, ending with [DONE] or an error event.

    Events that arrive in one network read are yielded together, so a burst of
    small chunks costs one write to the client, not one per chunk.
    """
    buffer = b""
    done = broken = False
    try:
        async for piece in response.content.iter_any():
            buffer += piece.replace(b"\r\n", b"\n") if b"\r" in piece else piece
            if b"\n\n" not in buffer:
                continue
            *events, buffer = buffer.split(b"\n\n")
            out = []
            for event in events:
                data = b"".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
                if not data:
                    if event.startswith(b":"):
                        out.append(event + b"\n\n")  # a keep-alive comment: the client's idle timers want it too
                    continue
                if data == b"[DONE]":
                    done = True
                    out.append(b"data: [DONE]\n\n")
                    break
                try:
                    chunk = json.loads(data)
                    if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                        usage.update(chunk["usage"])
                except ValueError:
                    out.append(_error_event(f"provider {provider.model} sent an unreadable stream chunk"))
                    broken = True
                    break
                out.append(b"data: " + data + b"\n\n")
            if out:
                yield b"".join(out)
            if done or broken:
                return
        if not done:
            yield _error_event(f"provider {provider.model} closed the stream before it finished")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        yield _error_event(f"provider {provider.model} stream failed: {type(exc).__name__}")
    finally:
        if done:
            response.release()  # back to the keep-alive pool
        else:
            response.close()  # cancelled or broken: drop the connection, so the provider stops too


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()


def _error_event(message: str) -> bytes:
    error = {"error": {"message": f"stream interrupted: {message}", "type": "upstream_error",
                       "code": "stream_interrupted"}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"
