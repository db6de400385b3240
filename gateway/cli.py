"""The `gateway` command: `gateway up [CONFIG]` serves, `gateway check [CONFIG]` validates,
`gateway reload [CONFIG]` makes a running gateway re-read its config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from . import __version__
from .config import DEFAULT_HOST, DEFAULT_PORT, Config, ConfigError, load_config
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
        from .redis_pins import parse_url

        store = parse_url(routing.session_cache.url or "").describe()  # server, Sentinel or Cluster; no password
    lines.append(f"pins: {store}, ttl {routing.session_ttl_seconds}s sliding, at most {routing.session_max_entries}")
    sources = ", ".join(s.label for s in routing.session_key_sources) or "none"
    lines.append(f"session ids from: {sources}" + ("; else the conversation's opening" if routing.implicit_sessions else ""))
    if routing.route_on_user_only:
        lines.append("route_on_user_only: tool-result turns keep the previous decision")
    srv = config.server
    lines.append(f"server: headers at most {srv.max_header_bytes} bytes, {srv.max_headers} headers, "
                 f"{srv.max_header_line_bytes} bytes a line, within {srv.header_timeout:g}s; keep-alive "
                 f"{srv.keep_alive_timeout:g}s; at most {srv.max_connections} connections; drain {srv.drain_timeout:g}s")
    if config.auth_keys:
        lines.append(f"gateway keys: {len(config.auth_keys)} ({', '.join(sorted(config.auth_keys.values()))})")
    if config.ignored_sections:
        lines.append(f"ignored Plano sections: {', '.join(config.ignored_sections)}")
    lines += [f"note: {note}" for note in config.notes]
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = _load(path) if path else None
    if config is None:
        return 1
    print(f"{path}: ok")
    print("\n".join(describe(config)))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = _load(path) if path else None
    if config is None:
        return 1
    host = args.host or config.host
    port = args.port or config.port
    drain = args.drain_timeout if args.drain_timeout is not None else config.server.drain_timeout
    configure_logs(args.log_level, args.log_format)

    if args.workers > 1 and config.routing.session_cache.type != "redis":
        print(f"gateway cannot start: --workers {args.workers} with the in-memory pin store would split "
              "sessions between workers; set routing.session_cache to {type: redis, url: redis://…} "
              "or run one worker", file=sys.stderr)
        return 1

    from . import server

    unsafe = server.exposure_problem(host, config, args.allow_unauthenticated)
    if unsafe:
        print(f"gateway cannot start: {unsafe}", file=sys.stderr)
        return 1
    try:
        sock = server.bind(host, port)
    except server.ListenError as exc:
        print(f"gateway cannot start: {exc}", file=sys.stderr)
        return 1
    listen = server.Listen(host, port, config.server, drain)

    def check(new: Config) -> str | None:  # a reload must not make an exposed gateway keyless
        return server.exposure_problem(host, new, args.allow_unauthenticated)

    if args.workers > 1:
        _pass_to_workers(args, path, host)
        _print_listening(host, port, path, args.workers, config)
        return server.serve_workers("gateway.app:app_from_env", sock, listen, args.workers,
                                    str(Path(path).resolve()), check)

    from .app import create_app, reload_and_log

    try:
        app = create_app(config, log_prompts=args.log_prompts, hash_session_ids=args.hash_session_ids,
                         otel=args.otel)
    except Exception as exc:  # e.g. the router's data cannot load
        sock.close()
        print(f"gateway cannot start: {exc}", file=sys.stderr)
        return 1
    app.state.reload_check = check
    _print_listening(host, port, path, 1, config)
    return server.serve(app, sock, listen, on_reload=lambda: reload_and_log(app))


def _pass_to_workers(args: argparse.Namespace, path: str, host: str) -> None:
    """Worker processes build their app from the environment (gateway.app:app_from_env)."""
    flag = {True: "1", False: "0"}
    os.environ.update(GATEWAY_CONFIG=str(Path(path).resolve()), GATEWAY_LOG_LEVEL=args.log_level,
                      GATEWAY_LOG_FORMAT=args.log_format, GATEWAY_LOG_PROMPTS=flag[args.log_prompts],
                      GATEWAY_HASH_SESSION_IDS=flag[args.hash_session_ids], GATEWAY_OTEL=flag[args.otel],
                      GATEWAY_SUPERVISOR_PID=str(os.getpid()), GATEWAY_HOST=host,
                      GATEWAY_ALLOW_UNAUTHENTICATED=flag[args.allow_unauthenticated])


def _print_listening(host: str, port: int, path: str, workers: int, config: Config) -> None:
    shown = f"[{host}]" if ":" in host else host
    print(f"gateway listening on http://{shown}:{port}  (config {path}, {workers} worker(s))", flush=True)
    for line in describe(config):
        print(f"  {line}", flush=True)


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask a running gateway to re-read its config; print what it says (its problems when it refuses)."""
    import httpx

    url = args.url or _gateway_url(config_path(args.config, quiet=True))
    key = args.key or os.environ.get("GATEWAY_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.post(f"{url.rstrip('/')}/routing/v1/reload", headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        print(f"gateway reload: no gateway answered at {url} ({type(exc).__name__}); start one with `gateway up`, "
              "or pass --url with the address it listens on (or send its process SIGHUP)", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code in (200, 202):
        if answer.get("reloaded") is True:
            print(f"reloaded {answer.get('config')}: models {', '.join(answer.get('models', []))}; "
                  f"routes {', '.join(answer.get('routes', [])) or 'none'}")
        else:
            print(f"{answer.get('config')}: valid; {answer.get('reloaded')}")
        return 0
    for line in answer.get("problems", []):
        print(f"config error: {line}", file=sys.stderr)
    message = (answer.get("error") or {}).get("message") or response.text[:300]
    print(f"gateway reload: refused ({response.status_code}): {message}", file=sys.stderr)
    return 1


def _gateway_url(path: str | None) -> str:
    """Where the config's listener is, read as leniently as possible: the new file may be the broken one."""
    host, port = DEFAULT_HOST, DEFAULT_PORT
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if path else None
        listeners = raw.get("listeners") if isinstance(raw, dict) else None
        if isinstance(listeners, dict):  # Plano's legacy form
            listeners = [listeners.get("egress_traffic") or {}]
        for item in listeners or []:
            if isinstance(item, dict) and item.get("type", "model") == "model":
                host = str(item.get("address") or host)
                port = int(item.get("port") or port)
                break
    except (OSError, ValueError, yaml.YAMLError):
        pass
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def config_path(given: str | None, quiet: bool = False) -> str | None:
    """The config to use: the argument, else $GATEWAY_CONFIG, else ./config.yaml; None (said why) if none exists."""
    if given:
        return given
    if os.environ.get("GATEWAY_CONFIG"):
        return os.environ["GATEWAY_CONFIG"]
    if Path("config.yaml").is_file():
        return "config.yaml"
    if not quiet:
        print("config error: no config given: pass its path (gateway up path/to/config.yaml), set GATEWAY_CONFIG, "
              f"or put a config.yaml in the current directory ({Path.cwd()})", file=sys.stderr)
    return None


def port_number(text: str) -> int:
    """argparse type for --port: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; use 1-65535") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port; use 1-65535")
    return port


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible LLM gateway with session pinning")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    where = "path to config.yaml (default: $GATEWAY_CONFIG, else ./config.yaml)"
    up = sub.add_parser("up", help="serve the gateway in the foreground")
    up.add_argument("config", nargs="?", help=where)
    up.add_argument("--host", help="address to listen on (default: the listener's address, else 127.0.0.1)")
    up.add_argument("--port", type=port_number, help="port (default: the model listener's port, else 12000)")
    up.add_argument("--workers", type=int, default=1, help="worker processes (more than one needs the redis pin store)")
    up.add_argument("--allow-unauthenticated", action="store_true",
                    help="listen beyond loopback without gateway keys (auth.keys); only behind something that "
                         "authenticates clients")
    up.add_argument("--drain-timeout", type=seconds, metavar="SECONDS",
                    help="on SIGTERM, how long running requests and streams may take to finish "
                         "(default: server.drain_timeout, 30)")
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
    check.add_argument("config", nargs="?", help=where)
    check.set_defaults(func=cmd_check)
    reload = sub.add_parser("reload", help="make a running gateway re-read its config (as SIGHUP does)")
    reload.add_argument("config", nargs="?", help=f"{where}; only used to find the gateway's address")
    reload.add_argument("--url", help="the gateway's address (default: from the config's listener, "
                                      "else http://127.0.0.1:12000)")
    reload.add_argument("--key", help="a gateway key, when the config has auth.keys (default: $GATEWAY_KEY)")
    reload.set_defaults(func=cmd_reload)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
