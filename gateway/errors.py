"""The errors a client can see, each rendered in OpenAI's error shape."""

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
        self.upstream_seconds = 0.0  # time spent in provider calls before giving up


class RouterError(Exception):
    """The router could not decide (LLM router timed out, answered garbage, ...)."""
