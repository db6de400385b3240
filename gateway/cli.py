"""The `gateway` command: `gateway up CONFIG` serves, `gateway check CONFIG` validates."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import Config, ConfigError, load_config
from .logs import configure as configure_logs


def _load_dotenv(config_path: str) -> None:
    """Read KEY=VALUE lines from a .env beside the config (never overriding the environment)."""
    env_file = Path(config_path).resolve().parent / ".env"
    if not env_file.is_file():
        return
    for line in env_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        os.environ.setdefault(key.strip().removeprefix("export "), value.strip().strip("'\""))


def _load(path: str) -> Config | None:
    _load_dotenv(path)
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"config error: {line}", file=sys.stderr)
        return None


def describe(config: Config) -> list[str]:
    """A few readable lines saying what a config serves."""
    lines = ["models:"]
    for p in config.providers:
        flags = []
        if p.default:
            flags.append("default")
        if p.base_url:
            flags.append(f"at {p.base_url}")
        if p.speaks_responses:
            flags.append("serves the Responses API itself")
        if p.access_key_source and not p.access_key:
            flags.append(f"{p.access_key_source} not set: decisions work, forwarding will fail")
        lines.append(f"  {p.model}" + (f"  ({'; '.join(flags)})" if flags else ""))
    if config.aliases:
        lines.append("aliases:")
        lines += [f"  {alias} -> {target}" for alias, target in config.aliases.items()]
    lines.append("routes:" if config.routes else "routes: none (every request goes to the requested or default model)")
    for r in config.routes:
        extra = f" [{len(r.examples)} examples]" if r.examples else ""
        pool = f" (then {', '.join(r.fallbacks)})" if r.fallbacks else ""
        lines.append(f"  {r.name} -> {r.model}{pool}: {r.description}{extra}")
    routing = config.routing
    router = f"LLM ({routing.model})" if routing.model else "embedded"
    lines.append(f"router: {router}")
    store = routing.session_cache.type
    if store == "redis":
        store += f" at {routing.session_cache.url}"
    lines.append(f"pins: {store}, ttl {routing.session_ttl_seconds}s sliding, at most {routing.session_max_entries}")
    sources = ", ".join(s.label for s in routing.session_key_sources) or "none"
    lines.append(f"session ids from: {sources}" + ("; else the conversation's opening" if routing.implicit_sessions else ""))
    if routing.route_on_user_only:
        lines.append("route_on_user_only: tool-result turns keep the previous decision")
    if config.ignored_sections:
        lines.append(f"ignored Plano sections: {', '.join(config.ignored_sections)}")
    lines += [f"note: {note}" for note in config.notes]
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    print(f"{args.config}: ok")
    print("\n".join(describe(config)))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    host = args.host or config.host
    port = args.port or config.port
    configure_logs(args.log_level, args.log_format)

    if args.workers > 1 and config.routing.session_cache.type != "redis":
        print(f"gateway cannot start: --workers {args.workers} with the in-memory pin store would split "
              "sessions between workers; set routing.session_cache to {type: redis, url: redis://…} "
              "or run one worker", file=sys.stderr)
        return 1

    import uvicorn

    from .app import create_app

    print(f"gateway listening on http://{host}:{port}  (config {args.config}, {args.workers} worker(s))", flush=True)
    for line in describe(config):
        print(f"  {line}", flush=True)
    common = dict(host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    if args.workers > 1:
        os.environ.update(GATEWAY_CONFIG=str(Path(args.config).resolve()), GATEWAY_LOG_LEVEL=args.log_level,
                          GATEWAY_LOG_FORMAT=args.log_format, GATEWAY_LOG_PROMPTS="1" if args.log_prompts else "0",
                          GATEWAY_HASH_SESSION_IDS="1" if args.hash_session_ids else "0",
                          GATEWAY_OTEL="1" if args.otel else "0")
        uvicorn.run("gateway.app:app_from_env", factory=True, workers=args.workers, **common)
        return 0
    try:
        app = create_app(config, log_prompts=args.log_prompts, hash_session_ids=args.hash_session_ids,
                         otel=args.otel)
    except Exception as exc:  # e.g. the router's data cannot load
        print(f"gateway cannot start: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(app, **common)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible LLM gateway with session pinning")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="serve the gateway in the foreground")
    up.add_argument("config", help="path to config.yaml")
    up.add_argument("--host", help="address to listen on (default: the listener's address, else 127.0.0.1)")
    up.add_argument("--port", type=int, help="port (default: the model listener's port, else 12000)")
    up.add_argument("--workers", type=int, default=1, help="worker processes (more than one needs the redis pin store)")
    up.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                    help="info (default) logs one line per request; warning keeps only problems")
    up.add_argument("--log-format", default="text", choices=["text", "json"], help="request log lines as text or JSON")
    up.add_argument("--hash-session-ids", action="store_true", help="log a hash of each session id, not the id")
    up.add_argument("--otel", action="store_true",
                    help="OpenTelemetry spans (needs the otel extra; export set by OTEL_* variables)")
    up.add_argument("--log-prompts", action="store_true",
                    help="debugging aid: include the latest user message in request logs (never keys)")
    up.set_defaults(func=cmd_up)
    check = sub.add_parser("check", help="validate a config and show what it defines")
    check.add_argument("config", help="path to config.yaml")
    check.set_defaults(func=cmd_check)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
