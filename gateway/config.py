"""Loading and validating `config.yaml` (Plano v0.3.0 compatible).

The file is checked field by field; every problem found is collected into one
`ConfigError` whose lines each name the offending field, so `gateway check`
and `gateway up` can print them without a traceback.
"""

from __future__ import annotations

import os
import re
from fnmatch import fnmatchcase
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .sessions import DEFAULT_SOURCES, SessionSource

DEFAULT_PORT = 12000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SESSION_TTL = 600
DEFAULT_SESSION_MAX = 10_000
DEFAULT_PROVIDER_TIMEOUT = 60.0
DEFAULT_ROUTER_TIMEOUT = 2.0
DEFAULT_MAX_RETRIES = 2
# The whole request's deadline, every retry and fallback included, until its answer starts; Plano's listener `timeout`.
DEFAULT_REQUEST_TIMEOUT = 120.0
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

# Providers whose wire format is OpenAI's chat completions. For these the
# gateway appends `/v1` to a root `base_url`; others are passed to litellm as is.
OPENAI_COMPATIBLE = {
    "openai", "ollama", "ollama_chat", "groq", "deepseek", "mistral", "together_ai", "xai",
    "openrouter", "fireworks_ai", "deepinfra", "perplexity", "hosted_vllm", "vllm",
    "lm_studio", "moonshot",
}

# Plano's `provider_interface` names, mapped to litellm's provider prefixes.
_INTERFACE_TO_PROVIDER = {
    "openai": "openai", "claude": "anthropic", "deepseek": "deepseek", "groq": "groq",
    "mistral": "mistral", "gemini": "gemini", "openrouter": "openrouter",
    "moonshotai": "moonshot", "xiaomi": "openai", "digitalocean": "openai",
    "vercel": "openai", "chatgpt": "openai", "plano": "openai",
}

# litellm provider prefixes recognised at the front of a model name such as `ollama/arch-router`
# (a part of litellm.provider_list: asking litellm would cost its import, seconds, at load time).
LITELLM_PROVIDERS = OPENAI_COMPATIBLE | set(_INTERFACE_TO_PROVIDER.values()) | {
    "anthropic", "gemini", "vertex_ai", "bedrock", "azure", "azure_ai", "cohere", "huggingface", "watsonx",
    "cerebras", "sambanova", "nvidia_nim", "databricks",
}

# Plano sections this gateway accepts so that a Plano file loads unchanged,
# but does not act on. They are reported by `gateway check`.
_IGNORED_TOP_LEVEL = {
    "agents", "filters", "endpoints", "overrides", "system_prompt", "prompt_targets",
    "ratelimits", "tracing", "mode", "state_storage", "prompt_guards",
    "model_metrics_sources", "prompt_caching",
}

# Plano settings that load but that this gateway does not act on, and what to do instead.
# `gateway check` and `gateway up` print these lines (Config.notes).
_PLANO_NOT_ACTED_ON = {
    "prompt_caching": "prompt_caching is not acted on: to pin clients that send no session id by their "
                      "conversation's opening (Plano's session_affinity), set routing.implicit_sessions: true; "
                      "cache_control markers are left as the client sent them",
    "routing.routing_budget": "routing.routing_budget is not acted on: a pinned session here never switches "
                              "model while its pin lives (as with max_switch_spend_pct: 0); remove the block "
                              "to silence this line",
}

_ENV_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
# `$VAR` or `${VAR}` anywhere in a string, as Plano expands them (envsubst over the whole file).
_ENV_REFS = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# Fields whose variables are expanded where they are read, so an unset one is reported there by name.
_EXPANDED_WHERE_READ = {"access_key", "key", "base_url", "url", "headers"}
# Anthropic requires max_tokens; 4096 is the most every Claude model accepts (Claude 3's output limit),
# and what litellm used to send. litellm's own fallback, the model's context size, is refused by real models.
DEFAULT_MAX_TOKENS = 4096


class ConfigError(Exception):
    """A config that cannot be served; `problems` holds one line per fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Route:
    """A routing preference: an intent name, its description, and the model serving it."""

    name: str
    description: str
    model: str
    examples: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()  # Plano v0.4: the route's other `models`, tried in order after `model`


@dataclass
class Provider:
    """One configured model and how to reach it."""

    model: str  # as written in the config, e.g. "openai/gpt-4o"
    provider: str  # litellm provider prefix, e.g. "openai"
    model_name: str  # the provider's own name for it, e.g. "gpt-4o"
    name: str | None = None
    access_key: str | None = None
    access_key_source: str | None = None  # "$OPENAI_API_KEY" when taken from the environment
    base_url: str | None = None
    default: bool = False
    fallbacks: list[str] | None = None  # None: fail over to the default model; []: never fail over
    timeout: float = DEFAULT_PROVIDER_TIMEOUT
    headers: dict[str, str] = field(default_factory=dict)
    responses_api: bool | None = None  # speaks OpenAI's Responses API; None: only OpenAI's own URL does
    default_max_tokens: int | None = None  # sent when a translated request names no limit; None: see below

    @property
    def max_tokens_default(self) -> int | None:
        """The answer limit to send when a translated request gives none (Anthropic must get one)."""
        if self.default_max_tokens is not None:
            return self.default_max_tokens
        return DEFAULT_MAX_TOKENS if self.provider == "anthropic" else None

    @property
    def speaks_openai(self) -> bool:
        return self.provider in OPENAI_COMPATIBLE

    @property
    def speaks_responses(self) -> bool:
        if self.responses_api is not None:
            return self.responses_api
        return self.provider == "openai" and (not self.base_url or "://api.openai.com" in self.base_url)


@dataclass(frozen=True)
class SessionCache:
    type: str = "memory"
    url: str | None = None
    tenant_header: str | None = None


@dataclass(frozen=True)
class RoutingSettings:
    session_ttl_seconds: int = DEFAULT_SESSION_TTL
    session_max_entries: int = DEFAULT_SESSION_MAX
    session_cache: SessionCache = SessionCache()
    model: str | None = None  # an LLM to route with; None means the embedded router
    llm_provider: str | None = None
    router_timeout: float = DEFAULT_ROUTER_TIMEOUT
    session_key_sources: tuple[SessionSource, ...] = DEFAULT_SOURCES
    implicit_sessions: bool = False  # clients that send no session id pin by their conversation's opening
    route_on_user_only: bool = False  # a turn carrying only tool results keeps the previous decision


@dataclass(frozen=True)
class ServerSettings:
    """How the HTTP server treats connections (`server:`): header limits, timeouts, connections, drain."""

    max_header_bytes: int = 64 * 1024  # request line and headers together, as Envoy's default
    max_headers: int = 100  # as Envoy's default
    max_header_line_bytes: int = 8 * 1024  # one header line, as nginx's default buffer
    header_timeout: float = 15.0  # a request's headers must arrive within this many seconds
    keep_alive_timeout: float = 5.0  # an idle keep-alive connection is closed after this many seconds
    max_connections: int = 1000  # past this, requests are answered 503
    drain_timeout: float = 30.0  # on SIGTERM, in-flight requests and streams get this long to finish


@dataclass
class Config:
    providers: list[Provider]
    routes: list[Route]
    aliases: dict[str, str]
    routing: RoutingSettings
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_retries: int = DEFAULT_MAX_RETRIES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ignored_sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # Plano settings accepted but not acted on, and why
    auth_keys: dict[str, str] = field(default_factory=dict)  # client key -> its name (tenant)
    openai_relay: bool = True  # OpenAI-format providers skip litellm (see relay.py)
    server: ServerSettings = ServerSettings()
    source: str = "<memory>"
    _lookup: dict[str, Provider] = field(default_factory=dict, repr=False)
    _patterns: list[tuple[str, Provider]] = field(default_factory=list, repr=False)
    _routes: dict[str, Route] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._routes = {r.name: r for r in self.routes}
        # Every spelling a request may use for a model: "openai/gpt-4o", "gpt-4o",
        # the provider's `name`, and aliases. Exact ids win over bare names.
        for p in reversed(self.providers):
            self._lookup[p.model_name] = p
            if p.name:
                self._lookup[p.name] = p
        for p in self.providers:
            self._lookup[p.model] = p
        for alias, target in self.aliases.items():
            if "*" in alias or "?" in alias:  # a glob such as `claude-*`, tried in config order
                self._patterns.append((alias, self._lookup[target]))
            else:
                self._lookup[alias] = self._lookup[target]

    @property
    def default_provider(self) -> Provider:
        for p in self.providers:
            if p.default:
                return p
        return self.providers[0]

    def route(self, name: str | None) -> Route | None:
        """The configured route called `name`, if any."""
        return self._routes.get(name) if name is not None else None

    def find(self, model: str) -> Provider | None:
        """The provider a request's `model` names (id, bare name, `name`, alias or alias glob), if any."""
        found = self._lookup.get(model)
        if found is None and self._patterns:
            found = next((p for pattern, p in self._patterns if fnmatchcase(model, pattern)), None)
        return found

    def model_names(self) -> list[str]:
        return [p.model for p in self.providers] + list(self.aliases)


# --------------------------------------------------------------------------
# loading


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found; pass the path of a config.yaml"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read ({exc})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{path}: not valid YAML{where}: {problem}"]) from None
    return parse_config(raw, env=os.environ if env is None else env, source=str(path))


def parse_config(raw: Any, env: dict[str, str] | os._Environ[str], source: str = "<memory>") -> Config:
    """Validate an already-parsed YAML document and build a Config."""
    v = _Validator(env)
    cfg = v.config(_expand_set_variables(raw, env))
    if v.problems:
        raise ConfigError([f"{source}: {p}" for p in v.problems])
    assert cfg is not None
    cfg.source = source
    return cfg


class _Validator:
    """Walks the document once, collecting problems instead of stopping at the first."""

    def __init__(self, env: dict[str, str] | os._Environ[str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.notes: list[str] = []

    def fail(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")

    def _keys(self, obj: dict, where: str, allowed: set[str]) -> None:
        for key in obj:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.fail(f"{where}.{key}" if where else str(key), f"unknown field; expected one of: {hint}")

    def _typed(self, obj: dict, key: str, where: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
        if key not in obj or obj[key] is None:
            if required:
                self.fail(f"{where}.{key}" if where else key, "is required")
            return None
        value = obj[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python, but `port: true` is still wrong.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.fail(f"{where}.{key}" if where else key, f"must be a {names}, got {_describe(value)}")
            return None
        return value

    def _env_value(self, value: str, where: str, needed: bool) -> tuple[str | None, str | None]:
        """Expand `$VAR` / `${VAR}`, whole or inside the string; returns (value, source). Unset is a problem only
        if needed (an access key may be missing: decisions still work)."""
        m = _ENV_REF.match(value.strip())
        if not m:
            unset = [a or b for a, b in _ENV_REFS.findall(value) if not self.env.get(a or b)]
            if unset:
                if needed:
                    self.fail(where, f"environment variable {unset[0]} (in {value!r}) is not set; export it or "
                                     "put it in .env")
                return None, f"${unset[0]}"
            return _ENV_REFS.sub(lambda ref: self.env[ref.group(1) or ref.group(2)], value), None
        var = m.group(1)
        resolved = self.env.get(var)
        if not resolved:
            if needed:
                self.fail(where, f"environment variable {var} is not set; export it or put it in .env")
            return None, f"${var}"
        return resolved, f"${var}"

    def _interface_with_prefix(self, where: str, prefix: str, interface: str) -> str:
        """The provider of `prefix/model` given Plano's `provider_interface` too.

        As in Plano, a prefix that names no provider (`custom/llama-3`) is only
        the entry's own label, and the interface says how to speak to it. A
        provider prefix that the interface contradicts is an error.
        """
        provider = _INTERFACE_TO_PROVIDER[interface]
        if prefix not in LITELLM_PROVIDERS:
            return provider
        if prefix != provider:
            self.fail(f"{where}.provider_interface", f"{interface} contradicts the model's prefix {prefix}/; "
                                                     "remove provider_interface or change the prefix")
        return prefix

    # -- sections -----------------------------------------------------------

    def config(self, raw: Any) -> Config | None:
        if raw is None:
            self.problems.append("the file is empty; it needs at least a model_providers list")
            return None
        if not isinstance(raw, dict):
            self.problems.append(f"top level must be a mapping of sections, got {_describe(raw)}")
            return None
        allowed = {"version", "listeners", "model_providers", "llm_providers", "model_aliases",
                   "routing", "routing_preferences", "gateway", "auth", "server"} | _IGNORED_TOP_LEVEL
        self._keys(raw, "", allowed)
        version = raw.get("version")
        if version is not None and not isinstance(version, str):
            self.fail("version", f"must be a string such as v0.3.0, got {_describe(version)}")

        if "prompt_caching" in raw:
            self.notes.append(_PLANO_NOT_ACTED_ON["prompt_caching"])
        host, port, retries, deadline = self.listeners(raw.get("listeners"))
        if "model_providers" in raw and "llm_providers" in raw:
            self.fail("llm_providers", "give either model_providers or its older name llm_providers, not both")
        key = "model_providers" if "model_providers" in raw else "llm_providers"
        providers, inline_routes = self.providers(raw.get(key), key)
        routes = self.plano_routes(inline_routes, raw.get("routing_preferences"), providers)
        aliases = self.aliases(raw.get("model_aliases"), providers)
        routing = self.routing(raw.get("routing"), providers)
        max_body, relay = self.gateway_section(raw.get("gateway"))
        server = self.server_section(raw.get("server"))
        auth_keys = self.auth(raw.get("auth"))
        if self.problems:
            return None
        for p in providers:
            for fb in p.fallbacks or []:
                if not _find(providers, fb):
                    self.fail(f"{p.model}.fallbacks", f"{fb!r} is not a configured model; "
                              f"use one of: {', '.join(x.model for x in providers)}")
        if self.problems:
            return None
        return Config(providers=providers, routes=routes, aliases=aliases, routing=routing,
                      host=host, port=port, max_retries=retries, request_timeout=deadline, max_body_bytes=max_body,
                      auth_keys=auth_keys,
                      openai_relay=relay, notes=self.notes, server=server,
                      ignored_sections=sorted(k for k in raw if k in _IGNORED_TOP_LEVEL))

    def listeners(self, raw: Any) -> tuple[str, int, int, float]:
        host, port, retries, deadline = DEFAULT_HOST, DEFAULT_PORT, DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT
        if raw is None:
            return host, port, retries, deadline
        if isinstance(raw, dict):  # Plano's legacy form: {egress_traffic: {address, port}}
            self._keys(raw, "listeners", {"ingress_traffic", "egress_traffic"})
            raw = [dict(v, type="model", name=k) for k, v in raw.items()
                   if k == "egress_traffic" and isinstance(v, dict)]
        if not isinstance(raw, list):
            self.fail("listeners", f"must be a list, got {_describe(raw)}")
            return host, port, retries, deadline
        allowed = {"name", "port", "address", "timeout", "router", "max_retries", "type", "agents",
                   "input_filters", "output_filters", "message_format"}
        for i, item in enumerate(raw):
            where = f"listeners[{i}]"
            if not isinstance(item, dict):
                self.fail(where, f"must be a mapping, got {_describe(item)}")
                continue
            self._keys(item, where, allowed)
            if item.get("type", "model") != "model":
                continue
            p = self._typed(item, "port", where, int)
            if p is not None:
                if not 0 < p < 65536:
                    self.fail(f"{where}.port", f"must be between 1 and 65535, got {p}")
                else:
                    port = p
            host = self._typed(item, "address", where, str) or host
            r = self._typed(item, "max_retries", where, int)
            if r is not None:
                if r < 0:
                    self.fail(f"{where}.max_retries", f"must be 0 or more, got {r}")
                else:
                    retries = r
            t = self._typed(item, "timeout", where, (int, float, str))
            if t is not None:
                seconds = _seconds(t)
                if seconds is None or seconds <= 0:
                    self.fail(f"{where}.timeout", "is the whole request's deadline, retries and fallbacks included: "
                              f"a positive number of seconds (or like '30s'), got {t!r}")
                else:
                    deadline = seconds
        return host, port, retries, deadline

    def providers(self, raw: Any, key: str) -> tuple[list[Provider], list[Route]]:
        providers: list[Provider] = []
        routes: list[Route] = []
        if raw is None:
            self.fail("model_providers", "is required: list the models the gateway may serve")
            return providers, routes
        if not isinstance(raw, list) or not raw:
            self.fail(key, f"must be a non-empty list of models, got {_describe(raw)}")
            return providers, routes
        allowed = {"model", "name", "access_key", "base_url", "default", "routing_preferences",
                   "provider_interface", "http_host", "passthrough_auth", "headers",
                   "fallbacks", "timeout", "responses_api", "default_max_tokens"}
        for i, item in enumerate(raw):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                self.fail(where, f"must be a mapping with at least `model`, got {_describe(item)}")
                continue
            model = self._typed(item, "model", where, str, required=True)
            if model is not None and not model.strip():
                self.fail(f"{where}.model", "must not be empty")
                model = None
            if model is not None:
                where = f"{key}[{i}] ({model})"
            self._keys(item, where, allowed)
            if model is None:
                continue
            interface = self._typed(item, "provider_interface", where, str)
            if interface is not None and interface not in _INTERFACE_TO_PROVIDER:
                self.fail(f"{where}.provider_interface", f"must be one of: {', '.join(sorted(_INTERFACE_TO_PROVIDER))}, "
                                                         f"got {interface!r}")
                interface = None
            if "/" in model:
                prefix, model_name = model.split("/", 1)
                if interface is not None:
                    prefix = self._interface_with_prefix(where, prefix, interface)
            else:
                prefix = _INTERFACE_TO_PROVIDER.get(interface or "openai", "openai")
                model_name = model
            access_key, source = None, None
            key_raw = self._typed(item, "access_key", where, str)
            if key_raw is not None:
                access_key, source = self._env_value(key_raw, f"{where}.access_key", needed=False)
            base_url = self._typed(item, "base_url", where, str)
            if base_url is not None:
                base_url, _ = self._env_value(base_url, f"{where}.base_url", needed=True)
                if base_url and not re.match(r"^https?://[^/\s]+", base_url):
                    self.fail(f"{where}.base_url", f"must be an http(s) URL such as http://127.0.0.1:11434, got {base_url!r}")
            timeout = self._typed(item, "timeout", where, (int, float, str))
            timeout_s = _seconds(timeout) if timeout is not None else DEFAULT_PROVIDER_TIMEOUT
            if timeout_s is None or timeout_s <= 0:
                self.fail(f"{where}.timeout", f"must be a positive number of seconds (or like '30s'), got {timeout!r}")
                timeout_s = DEFAULT_PROVIDER_TIMEOUT
            fallbacks = self._typed(item, "fallbacks", where, list)
            if fallbacks is not None and any(not isinstance(f, str) for f in fallbacks):
                self.fail(f"{where}.fallbacks", "must be a list of model names")
                fallbacks = None
            headers = {str(k): self._env_value(str(v), f"{where}.headers.{k}", needed=True)[0] or ""
                       for k, v in (self._typed(item, "headers", where, dict) or {}).items()}
            max_tokens = self._typed(item, "default_max_tokens", where, int)
            if max_tokens is not None and max_tokens < 1:
                self.fail(f"{where}.default_max_tokens", f"must be a positive whole number, got {max_tokens}")
                max_tokens = None
            provider = Provider(
                model=model, provider=prefix, model_name=model_name,
                name=self._typed(item, "name", where, str), access_key=access_key,
                access_key_source=source, base_url=base_url,
                default=bool(self._typed(item, "default", where, bool)),
                fallbacks=fallbacks, timeout=timeout_s,
                headers=headers,
                responses_api=self._typed(item, "responses_api", where, bool), default_max_tokens=max_tokens,
            )
            if self._typed(item, "passthrough_auth", where, bool):
                self.fail(f"{where}.passthrough_auth", "forwarding the client's Authorization header to the provider "
                          "is not supported; remove it and give the provider's key as access_key (e.g. "
                          "$PROVIDER_API_KEY)")
            self._typed(item, "http_host", where, str)
            if any(p.model == model for p in providers):
                self.fail(where, f"model {model!r} is listed twice; keep one entry")
            providers.append(provider)
            prefs = self._typed(item, "routing_preferences", where, list) or []
            for j, pref in enumerate(prefs):
                route = self.route(pref, f"{where}.routing_preferences[{j}]", model, {"name", "description", "examples"})
                if route:
                    routes.append(route)
        defaults = [p.model for p in providers if p.default]
        if len(defaults) > 1:
            self.fail(key, f"more than one model has `default: true` ({', '.join(defaults)}); mark exactly one")
        return providers, routes

    def route(self, raw: Any, where: str, model: str, allowed: set[str]) -> Route | None:
        if not isinstance(raw, dict):
            self.fail(where, f"must be a mapping with name and description, got {_describe(raw)}")
            return None
        self._keys(raw, where, allowed)
        name = self._typed(raw, "name", where, str, required=True)
        desc = self._typed(raw, "description", where, str, required=True)
        if desc is not None and not desc.strip():
            self.fail(f"{where}.description", "must not be empty: the router matches requests against it")
            desc = None
        examples = self._typed(raw, "examples", where, list) or []
        if any(not isinstance(e, str) or not e.strip() for e in examples):
            self.fail(f"{where}.examples", "must be a list of non-empty example prompts")
            examples = []
        if name is None or desc is None:
            return None
        if name == "other":
            self.fail(f"{where}.name", "'other' is reserved for 'no route matched'; choose another name")
        return Route(name=name, description=desc.strip(), model=model, examples=tuple(examples))

    # -- Plano v0.4 layout ----------------------------------------------------

    def plano_routes(self, inline: list[Route], raw: Any, providers: list[Provider]) -> list[Route]:
        """Routes from both of Plano's layouts, merged by name the way Plano's own config migration does.

        v0.3.0 writes preferences under each model; v0.4.0 lists them at the top level, each
        with an ordered `models` pool (the first serves, the rest are its fallbacks). A name
        given at the top level wins over the same name inline; one name inline under several
        models becomes one route whose pool is those models in file order.
        """
        top = self.top_level_routes(raw, providers)
        top_names = {r.name for r in top}
        merged: dict[str, Route] = {}
        for r in inline:
            if r.name in top_names:
                self.notes.append(f"routing_preferences {r.name!r} under {r.model} is replaced by the top-level "
                                  "entry of that name (as Plano does); remove one of them")
                continue
            known = merged.get(r.name)
            if known is None:
                merged[r.name] = r
                continue
            if r.description != known.description:
                self.notes.append(f"routing_preferences {r.name!r} under {r.model}: the description given under "
                                  f"{known.model} is used (the first one, as Plano does)")
            if r.model != known.model and r.model not in known.fallbacks:
                known = replace(known, fallbacks=known.fallbacks + (r.model,))
            merged[r.name] = replace(known, examples=known.examples + r.examples)
        return list(merged.values()) + top

    def top_level_routes(self, raw: Any, providers: list[Provider]) -> list[Route]:
        """Plano v0.4's top-level `routing_preferences`: each route serves the first of its `models`."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail("routing_preferences", f"must be a list of {{name, description, models}}, got {_describe(raw)}")
            return []
        routes: list[Route] = []
        for i, pref in enumerate(raw):
            where = f"routing_preferences[{i}]"
            if not isinstance(pref, dict):
                self.fail(where, f"must be a mapping with name, description and models, got {_describe(pref)}")
                continue
            pool = self._model_pool(pref.get("models"), f"{where}.models", providers)
            self._selection_policy(pref.get("selection_policy"), f"{where}.selection_policy")
            route = self.route(pref, where, pool[0] if pool else "",
                               {"name", "description", "examples", "models", "selection_policy"})
            if route is None or not pool:
                continue
            if any(r.name == route.name for r in routes):
                self.fail(f"{where}.name", f"{route.name!r} is used by an earlier routing preference; "
                                           "route names must be unique (list several models under one route instead)")
                continue
            routes.append(replace(route, fallbacks=tuple(pool[1:])))
        return routes

    def _model_pool(self, raw: Any, where: str, providers: list[Provider]) -> list[str]:
        """A route's `models`: configured model ids, in order, each once; [] after a problem."""
        if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
            self.fail(where, "must be a non-empty list of configured model names "
                             "(the first serves the route, the others are tried in order if it fails)")
            return []
        pool: list[str] = []
        for j, name in enumerate(raw):
            target = _find(providers, name)
            if target is None:
                self.fail(f"{where}[{j}]", f"{name!r} is not a configured model; add it to model_providers "
                                           f"or use one of: {', '.join(p.model for p in providers)}")
            elif target.model in pool:
                self.fail(f"{where}[{j}]", f"{name!r} is listed twice; keep one")
            else:
                pool.append(target.model)
        return pool if len(pool) == len(raw) else []

    def _selection_policy(self, raw: Any, where: str) -> None:
        """Plano's `selection_policy: {prefer: cheapest|fastest|none}`; only the written order is used here."""
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.fail(where, f"must be a mapping such as {{prefer: none}}, got {_describe(raw)}")
            return
        self._keys(raw, where, {"prefer"})
        prefer = self._typed(raw, "prefer", where, str, required=True)
        if prefer is None:
            return
        if prefer not in ("cheapest", "fastest", "none"):
            self.fail(f"{where}.prefer", f"must be cheapest, fastest or none, got {prefer!r}")
        elif prefer != "none":
            source = "price catalog" if prefer == "cheapest" else "latency source"
            self.notes.append(f"{where}.prefer: {prefer} is not acted on: this gateway reads no {source} "
                              "(model_metrics_sources), so the route's models are tried in the order written, "
                              "as Plano does for models without data; put the one you prefer first")

    def aliases(self, raw: Any, providers: list[Provider]) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail("model_aliases", f"must be a mapping of alias: {{target: model}}, got {_describe(raw)}")
            return {}
        out = {}
        for alias, spec in raw.items():
            where = f"model_aliases.{alias}"
            if not isinstance(spec, dict):
                self.fail(where, f"must be a mapping with `target`, got {_describe(spec)}")
                continue
            self._keys(spec, where, {"target"})
            target = self._typed(spec, "target", where, str, required=True)
            if target is None:
                continue
            provider = _find(providers, target)
            if provider is None:
                self.fail(f"{where}.target", f"{target!r} is not a configured model; use one of: "
                          f"{', '.join(p.model for p in providers)}")
                continue
            out[str(alias)] = provider.model
        return out

    def routing(self, raw: Any, providers: list[Provider]) -> RoutingSettings:
        if raw is None:
            return RoutingSettings()
        if not isinstance(raw, dict):
            self.fail("routing", f"must be a mapping, got {_describe(raw)}")
            return RoutingSettings()
        self._keys(raw, "routing", {"session_ttl_seconds", "session_max_entries", "session_cache",
                                    "model", "llm_provider", "timeout", "session_key_sources",
                                    "implicit_sessions", "route_on_user_only", "routing_budget"})
        if "routing_budget" in raw:
            self.notes.append(_PLANO_NOT_ACTED_ON["routing.routing_budget"])
        ttl = self._typed(raw, "session_ttl_seconds", "routing", int)
        if ttl is not None and ttl < 1:
            self.fail("routing.session_ttl_seconds", f"must be at least 1, got {ttl}")
        max_entries = self._typed(raw, "session_max_entries", "routing", int)
        if max_entries is not None and max_entries < 1:
            self.fail("routing.session_max_entries", f"must be at least 1, got {max_entries}")
        cache = SessionCache()
        raw_cache = self._typed(raw, "session_cache", "routing", dict)
        if raw_cache is not None:
            where = "routing.session_cache"
            self._keys(raw_cache, where, {"type", "url", "tenant_header"})
            kind = self._typed(raw_cache, "type", where, str) or "memory"
            if kind not in ("memory", "redis"):
                self.fail(f"{where}.type", f"must be memory or redis, got {kind!r}")
            url = self._typed(raw_cache, "url", where, str)
            if url is not None:
                url, _ = self._env_value(url, f"{where}.url", needed=kind == "redis")
            if kind == "redis" and "url" not in raw_cache:
                self.fail(f"{where}.url", "is required when type is redis, e.g. redis://127.0.0.1:6379")
            if kind == "redis" and url:
                from .redis_pins import parse_url  # a server, Sentinel or Cluster URL

                try:
                    parse_url(url)
                except ValueError as exc:
                    self.fail(f"{where}.url", str(exc))
            cache = SessionCache(type=kind, url=url, tenant_header=self._typed(raw_cache, "tenant_header", where, str))
        router_model = self._typed(raw, "model", "routing", str)
        llm_provider = self._typed(raw, "llm_provider", "routing", str)
        timeout = self._typed(raw, "timeout", "routing", (int, float, str))
        timeout_s = _seconds(timeout) if timeout is not None else DEFAULT_ROUTER_TIMEOUT
        if timeout_s is None or timeout_s <= 0:
            self.fail("routing.timeout", f"must be a positive number of seconds, got {timeout!r}")
            timeout_s = DEFAULT_ROUTER_TIMEOUT
        if llm_provider is not None and _find(providers, llm_provider) is None:
            self.fail("routing.llm_provider", f"{llm_provider!r} is not a configured model")
        if llm_provider is not None and router_model is None:
            self.fail("routing.model", "is required when routing.llm_provider is set")
        if (router_model is not None and llm_provider is None and _find(providers, router_model) is None
                and "/" in router_model and router_model.partition("/")[0] not in LITELLM_PROVIDERS):
            self.fail("routing.model", f"{router_model!r} is not a configured model and does not start with a "
                      "provider such as ollama/; set routing.llm_provider to the model_providers entry (its name "
                      "or model) whose server serves it")
        sources = self.session_sources(raw.get("session_key_sources"))
        return RoutingSettings(
            session_key_sources=sources,
            implicit_sessions=bool(self._typed(raw, "implicit_sessions", "routing", bool)),
            route_on_user_only=bool(self._typed(raw, "route_on_user_only", "routing", bool)),
            session_ttl_seconds=ttl or DEFAULT_SESSION_TTL,
            session_max_entries=max_entries or DEFAULT_SESSION_MAX,
            session_cache=cache, model=router_model, llm_provider=llm_provider,
            router_timeout=timeout_s,
        )

    def session_sources(self, raw: Any) -> tuple[SessionSource, ...]:
        """`routing.session_key_sources`: [{header: X-Name} | {body: a.b, json: c}], first present wins."""
        where = "routing.session_key_sources"
        if raw is None:
            return DEFAULT_SOURCES
        if not isinstance(raw, list):
            self.fail(where, f"must be a list of {{header: name}} or {{body: field.path}} entries, got {_describe(raw)}")
            return DEFAULT_SOURCES
        sources = []
        for i, item in enumerate(raw):
            at = f"{where}[{i}]"
            if not isinstance(item, dict):
                self.fail(at, f"must be a mapping such as {{header: X-Session-Id}} or {{body: metadata.session_id}}, "
                              f"got {_describe(item)}")
                continue
            self._keys(item, at, {"header", "body", "json"})
            header = self._typed(item, "header", at, str)
            body = self._typed(item, "body", at, str)
            inner = self._typed(item, "json", at, str)
            if (header is None) == (body is None):
                self.fail(at, "needs exactly one of `header` or `body`")
            elif inner is not None and body is None:
                self.fail(f"{at}.json", "only applies to a `body` field holding a JSON string")
            elif any(not part for part in (body or header or "").split(".")):
                self.fail(at, f"has an empty name or path segment: {body or header!r}")
            else:
                sources.append(SessionSource(header=header, body=body, json=inner))
        return tuple(sources)

    def auth(self, raw: Any) -> dict[str, str]:
        """Our `auth: {keys: [{name, key}]}`: client keys, each its own tenant."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail("auth", f"must be a mapping with `keys`, got {_describe(raw)}")
            return {}
        self._keys(raw, "auth", {"keys"})
        items = self._typed(raw, "keys", "auth", list, required=True) or []
        keys: dict[str, str] = {}
        for i, item in enumerate(items):
            where = f"auth.keys[{i}]"
            if not isinstance(item, dict):
                self.fail(where, f"must be a mapping with name and key, got {_describe(item)}")
                continue
            self._keys(item, where, {"name", "key"})
            name = self._typed(item, "name", where, str, required=True)
            key = self._typed(item, "key", where, str, required=True)
            if name is None or key is None:
                continue
            value, _ = self._env_value(key, f"{where}.key", needed=True)
            if value is None:
                continue
            if value in keys:
                self.fail(f"{where}.key", f"is the same key as {keys[value]!r}; give each client its own")
            elif name in keys.values():
                self.fail(f"{where}.name", f"{name!r} is used twice; names identify tenants")
            keys[value] = name
        if not keys and not self.problems:
            self.fail("auth.keys", "lists no keys; remove `auth` to run without client keys")
        return keys

    def gateway_section(self, raw: Any) -> tuple[int, bool]:
        """Our own settings that Plano has no field for: (max_body_bytes, openai_relay).

        GATEWAY_OPENAI_RELAY=0/1 in the environment overrides `openai_relay`.
        """
        relay_env = self.env.get("GATEWAY_OPENAI_RELAY")
        relay_default = relay_env not in ("0", "false", "no") if relay_env is not None else True
        if raw is None:
            return DEFAULT_MAX_BODY_BYTES, relay_default
        if not isinstance(raw, dict):
            self.fail("gateway", f"must be a mapping, got {_describe(raw)}")
            return DEFAULT_MAX_BODY_BYTES, relay_default
        self._keys(raw, "gateway", {"max_body_bytes", "openai_relay"})
        size = self._typed(raw, "max_body_bytes", "gateway", int)
        if size is not None and size < 1024:
            self.fail("gateway.max_body_bytes", f"must be at least 1024, got {size}")
        relay = self._typed(raw, "openai_relay", "gateway", bool)
        if relay is None or relay_env is not None:
            relay = relay_default
        return size or DEFAULT_MAX_BODY_BYTES, relay

    def server_section(self, raw: Any) -> ServerSettings:
        """Our `server:` section: header limits, timeouts, the connection limit and the drain time."""
        if raw is None:
            return ServerSettings()
        if not isinstance(raw, dict):
            self.fail("server", f"must be a mapping, got {_describe(raw)}")
            return ServerSettings()
        defaults = ServerSettings()
        sizes = {"max_header_bytes": 1024, "max_headers": 8, "max_header_line_bytes": 256, "max_connections": 1}
        times = ("header_timeout", "keep_alive_timeout", "drain_timeout")
        self._keys(raw, "server", set(sizes) | set(times))
        values: dict[str, Any] = {}
        for key, least in sizes.items():
            n = self._typed(raw, key, "server", int)
            if n is not None and n < least:
                self.fail(f"server.{key}", f"must be at least {least}, got {n}")
            elif n is not None:
                values[key] = n
        for key in times:
            given = self._typed(raw, key, "server", (int, float, str))
            seconds = _seconds(given) if given is not None else None
            if given is not None and (seconds is None or seconds <= 0):
                self.fail(f"server.{key}", f"must be a positive number of seconds (or like '30s'), got {given!r}")
            elif seconds is not None:
                values[key] = seconds
        if values.get("max_header_line_bytes", defaults.max_header_line_bytes) > values.get(
                "max_header_bytes", defaults.max_header_bytes):
            self.fail("server.max_header_line_bytes", "must not exceed server.max_header_bytes")
        return replace(defaults, **values)


def _expand_set_variables(raw: Any, env: dict[str, str] | os._Environ[str], key: str = "") -> Any:
    """`raw` with every `$VAR` / `${VAR}` that is set replaced in its strings, as Plano does.

    An unset one stays as written. Keys, access keys, URLs and headers are left
    for the validator, which expands them itself and names a missing variable.
    """
    if key in _EXPANDED_WHERE_READ:
        return raw
    if isinstance(raw, str):
        if "$" not in raw:
            return raw
        return _ENV_REFS.sub(lambda ref: env.get(ref.group(1) or ref.group(2)) or ref.group(0), raw)
    if isinstance(raw, dict):
        return {k: _expand_set_variables(v, env, str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_expand_set_variables(v, env) for v in raw]
    return raw


_TYPE_NAMES = {str: "string", int: "whole number", float: "number", bool: "boolean (true/false)",
               dict: "mapping", list: "list"}


def _find(providers: list[Provider], name: str) -> Provider | None:
    for p in providers:
        if name in (p.model, p.name):
            return p
    for p in providers:
        if name == p.model_name:
            return p
    return None


def _seconds(value: Any) -> float | None:
    """Accept 30, 2.5, "30s", "500ms" (Plano writes timeouts as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", str(value))
    if not m:
        return None
    number, unit = float(m.group(1)), m.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"[:80]
