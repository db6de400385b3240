"""The errors a client can see, and the one mapping from a provider's failure to them.

Each API surface renders a `GatewayError` in its own wire shape (OpenAI's
`{"error": {...}}`, Anthropic's `{"type": "error", "error": {...}}`); the
status, code and message are decided here, once, with secrets already scrubbed.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """An error answered to the client as `{"error": {"message", "type", "code"}}`."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def reword(self, message: str) -> None:
        """Replace the message (masked, or with more said), keeping str(error) in step."""
        self.message = message
        self.args = (message,)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class Unavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "unavailable"


class UpstreamError(GatewayError):
    """The provider failed; `transient` failures may be retried or failed over."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, message: str, *, status: int = 502, transient: bool = True,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, headers=headers)
        self.status = status
        self.transient = transient
        if status == 400:  # the request itself was refused: the client's to fix, as OpenAI types it
            self.type = "invalid_request_error"
        self.upstream_seconds = 0.0  # time spent in provider calls before giving up


class RouterError(Exception):
    """The router could not decide (LLM router timed out, answered garbage, ...)."""


def upstream_failure(model: str, status: int, detail: str, retry_after: str | None = None) -> UpstreamError:
    """What a client sees when provider `model` answered HTTP `status` (both upstreams use this)."""
    if status == 429:
        return UpstreamError(f"provider {model} is rate limiting requests (429): {detail}", status=429,
                             code="upstream_rate_limited", headers={"Retry-After": retry_after} if retry_after else None)
    if status >= 500:
        return UpstreamError(f"provider {model} failed ({status}): {detail}", status=502)
    if status in (401, 403):
        return UpstreamError(f"provider {model} rejected the gateway's API key ({status}); check access_key "
                             f"in the config", status=502, transient=False, code="upstream_auth_failed")
    if status == 404:
        return UpstreamError(f"provider {model} does not know this model or path (404): {detail}", status=502,
                             transient=False, code="upstream_not_found")
    return UpstreamError(f"provider {model} refused the request ({status}): {detail}", status=400,
                         transient=False, code="upstream_bad_request")


def upstream_timeout(model: str, seconds: float) -> UpstreamError:
    return UpstreamError(f"provider {model} did not answer within {seconds:g}s", status=504, code="upstream_timeout")


def upstream_unreachable(model: str, where: str, detail: str) -> UpstreamError:
    return UpstreamError(f"could not connect to provider {model} at {where}: {detail}", status=502,
                         code="upstream_unreachable")


def upstream_bad_response(model: str, detail: str) -> UpstreamError:
    return UpstreamError(f"provider {model} {detail}", status=502, code="upstream_bad_response")
