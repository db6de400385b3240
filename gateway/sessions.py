"""Which session a request belongs to, and the tenant-scoped key its pin lives under.

The session id is the first of a configured list of sources that is present.

Agent CLIs already identify their sessions (Claude Code in a header and inside
`metadata.user_id`, Codex in a header and `prompt_cache_key`), Plano's clients
send `X-Model-Affinity` and the seed's send `X-Session-Id`. The default list
reads all of them, so those clients pin with no configuration. A source is a
header, or a field path in the JSON body, optionally a field inside a JSON
string held there (`json:`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import BadRequest

if TYPE_CHECKING:
    from .config import RoutingSettings

MAX_SESSION_ID = 256
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class SessionSource:
    """One place a session id may be: `header` (a name) or `body` (a dotted path), plus `json` inside it."""

    header: str | None = None
    body: str | None = None
    json: str | None = None

    @property
    def label(self) -> str:
        """How decisions and logs name this source, e.g. `header:x-claude-code-session-id`."""
        if self.header is not None:
            return f"header:{self.header.lower()}"
        return f"body:{self.body}" + (f"#{self.json}" if self.json else "")

    def read(self, headers: Mapping[str, str], body: dict[str, Any]) -> Any:
        """The raw value here, or None when this source is absent from the request."""
        if self.header is not None:
            return headers.get(self.header)
        value = _path(body, self.body or "")
        if self.json is None or value is None:
            return value
        if not isinstance(value, str) or not value.startswith("{"):
            return None  # e.g. a plain user id where another client puts JSON
        try:
            return _path(json.loads(value), self.json)
        except ValueError:
            return None


DEFAULT_SOURCES: tuple[SessionSource, ...] = (
    SessionSource(header="X-Session-Id"),  # the seed's demo
    SessionSource(header="X-Model-Affinity"),  # Plano's released pinning header
    SessionSource(header="X-Claude-Code-Session-Id"),  # Claude Code, every request
    SessionSource(header="session-id"),  # Codex
    SessionSource(body="metadata.session_id"),  # LiteLLM's convention
    SessionSource(body="metadata.user_id", json="session_id"),  # Claude Code's body
    SessionSource(body="prompt_cache_key"),  # Codex's body
    SessionSource(body="client_metadata.session_id"),
)


def _path(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def find_session(sources: tuple[SessionSource, ...], headers: Mapping[str, str],
                 body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(session id, source label) from the first source present; BadRequest if its value is unusable."""
    for source in sources:
        value = source.read(headers, body)
        if value is None:
            continue
        where = source.header or source.label
        if not isinstance(value, str):
            raise BadRequest(f"session id in {source.label} must be a string, got {type(value).__name__}",
                             param=where)
        check_session_id(value, where)
        return value, source.label
    return None, None


def check_session_id(value: str, where: str = "X-Session-Id") -> None:
    """BadRequest unless `value` is a usable session id."""
    if not value:
        raise BadRequest(f"{where} is empty; send a non-empty session id or omit it", param=where)
    if len(value) > MAX_SESSION_ID:
        raise BadRequest(f"{where} is {len(value)} characters; the limit is {MAX_SESSION_ID}", param=where)
    if not _PRINTABLE_ASCII.match(value):
        raise BadRequest(f"{where} must be printable ASCII without spaces (e.g. a UUID)", param=where)


def conversation_id(prefix: str) -> str:
    """A stable id for a conversation from its opening (system prompt and first user turn)."""
    return "conv-" + hashlib.sha256(prefix.encode("utf-8", "replace")).hexdigest()[:32]


def tenant_prefix(client: str | None, tenant: str | None) -> str:
    """What scopes a key to its tenant: the gateway key's name and/or the tenant header's value.

    Parts are length-prefixed, so no choice of tenant or session id can
    collide with another tenant's key.
    """
    parts = [p for p in (client, tenant) if p is not None]
    return "".join(f"{len(p)}:{p}/" for p in parts)


@dataclass(frozen=True)
class Identity:
    """Who a request belongs to: its session (id, where it came from, pin key) or, failing that, its conversation."""

    session_id: str | None = None
    source: str | None = None
    key: str | None = None  # the tenant-scoped pin key
    conversation_key: str | None = None  # without a session, when routing.route_on_user_only is on


def identify(routing: RoutingSettings, headers: Mapping[str, str], body: dict[str, Any],
             opening: Callable[[], str], tenant: str) -> Identity:
    """The request's session from the configured sources, else (if enabled) from its conversation's opening."""
    sid, source = find_session(routing.session_key_sources, headers, body)
    if sid is None and routing.implicit_sessions and opening():
        sid, source = conversation_id(opening()), "implicit"
    if sid is not None:
        return Identity(sid, source, tenant + sid)
    if routing.route_on_user_only and opening():
        return Identity(conversation_key=tenant + conversation_id(opening()))
    return Identity()
