"""How `gateway up` runs uvicorn: the listening socket, limits on what a client may send, reload and drain.

- The socket is bound before anything is printed, so a port in use is an
  error at start, not a log line after "listening".
- `LimitedHttpProtocol` is uvicorn's httptools protocol (the fast parser,
  which has no header limit of its own) with the limits of `server:` added:
  header size, count and line length (431), the time a request's headers may
  take to arrive (408), and the connection limit (503).
- `GatewayServer` is uvicorn's server with our signals: SIGHUP reloads the
  config, SIGTERM/SIGINT drain (stop accepting, let requests and streams
  finish up to `drain_timeout`, then cut what is left and say how many).
- With `--workers N`, `GatewaySupervisor` checks a new config before it
  replaces the workers one by one on SIGHUP; pins live in Redis then, so
  they survive the new workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import json
import logging
import os
import resource
import signal
import socket
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any, Awaitable, Callable, Iterator

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess

from .config import Config, ConfigError, ServerSettings, load_config

log = logging.getLogger("gateway.server")
LINGER_SECONDS = 2.0  # how long a refused client's remaining bytes are drained before its connection closes
IDLE_GRACE_SECONDS = 1.0  # at shutdown, how long an idle connection may still bring a request already sent
DRAIN_CUT_EXIT = 3  # `gateway up` exit status when the drain time ran out with requests still running


class ListenError(Exception):
    """The address cannot be listened on; the message says why and what to do."""


# --------------------------------------------------------------------------
# where to listen


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine (127.0.0.0/8, ::1, or a name resolving only to those)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def exposure_problem(host: str, config: Config, allow_unauthenticated: bool) -> str | None:
    """Why serving `config` on `host` would be unsafe (no gateway keys beyond loopback), or None."""
    if config.auth_keys or allow_unauthenticated or is_loopback(host):
        return None
    return (f"listening on {host} reaches beyond this machine, and the config has no auth.keys, so anyone who can "
            "connect could spend your provider keys; add gateway keys (auth.keys, see README 'Tenants and gateway "
            "keys'), listen on 127.0.0.1, or pass --allow-unauthenticated if something in front of the gateway "
            "already authenticates clients")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or ListenError saying why not (port in use, unknown address)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}: not an address or known host name ({exc.strerror}); "
                          "use an address of this machine such as 127.0.0.1 or 0.0.0.0") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restart over TIME_WAIT sockets
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(f"port {port} on {host} is already in use (another gateway or program listens "
                              "there); stop it, or choose a free port with --port") from None
        if exc.errno == errno.EACCES:
            raise ListenError(f"no permission to listen on port {port}; use a port above 1023 "
                              "(or run with the needed privilege)") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ListenError(f"{host} is not an address of this machine; use one of its addresses, "
                              "127.0.0.1 or 0.0.0.0") from None
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)  # worker processes serve the same socket
    return sock


def raise_open_file_limit(connections: int) -> None:
    """Let the process hold `connections` client sockets plus as many to providers, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --------------------------------------------------------------------------
# what a client may send


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the protocol answers `status` and closes."""


def _refusal(status: int, reason: str, code: str, message: str, extra_headers: bytes = b"") -> bytes:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": code}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\n".encode() + b"content-type: application/json\r\n"
            + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n" + extra_headers
            + b"\r\n" + body)


async def _at_connection_limit(limit: int, scope: Any, receive: Any, send: Any) -> None:
    """The answer past `server.max_connections`: 503 saying so, in OpenAI's error shape."""
    body = json.dumps({"error": {
        "message": f"the gateway is at its connection limit (server.max_connections: {limit}); retry shortly, "
                   "or raise the limit or add replicas", "type": "server_error", "param": None,
        "code": "connection_limit"}}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Discard(asyncio.Protocol):
    """What a refused connection becomes: bytes still arriving are dropped until the client closes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self.transport.close()
        return False


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits, a header-read timeout and a connection limit.

    httptools buffers a header line whole before its callback runs, so the
    total is counted on the bytes as they arrive (checked after each read,
    so at most one read past the limit is ever held); the count and the line
    length are checked per header. The header-read deadline is checked once a
    second by `GatewayServer`, not with a timer per request.
    """

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits: ServerSettings = getattr(config, "gateway_limits", None) or ServerSettings()
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self.max_line = limits.max_header_line_bytes
        self.header_timeout = limits.header_timeout
        self.max_connections = limits.max_connections
        self.limit_concurrency = None  # ours instead of uvicorn's, to answer in the API's shape
        self.at_limit = functools.partial(_at_connection_limit, limits.max_connections)
        self.reading_headers = True  # the next bytes belong to a request's headers
        self.header_bytes = 0  # bytes read while reading headers
        self.waiting_since: float | None = None  # when this request's headers started (None: not reading)
        self.refusal = b""
        self.draining = False  # shutting down: answer what arrives, then close

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = self.loop.time()

    def data_received(self, data: bytes) -> None:
        if self.reading_headers:
            self.header_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self.refusal:
                self.refuse(self.refusal)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self.reading_headers and self.header_bytes > self.max_header_bytes:
            self.refuse(self._too_large(f"the request's headers exceed {self.max_header_bytes} bytes"))

    def _too_large(self, what: str) -> bytes:
        return _refusal(431, "Request Header Fields Too Large", "headers_too_large",
                        f"{what} (server.max_header_bytes {self.max_header_bytes}, max_headers "
                        f"{self.max_headers}, max_header_line_bytes {self.max_line}); send fewer or shorter "
                        "headers")

    def refuse(self, response: bytes) -> None:
        """Answer `response` and close, unless an answer is already on the wire (then just close).

        Closing a socket with unread bytes makes the kernel reset the
        connection, and a client still sending would never read the answer; so
        after the answer, what still arrives is read and dropped for a moment
        (as nginx's lingering close does), then the connection closes.
        """
        self.waiting_since = None
        self.reading_headers = False
        transport = self.transport
        if transport.is_closing():
            return
        if not response or (self.cycle is not None and not self.cycle.response_complete):
            transport.close()
            return
        transport.write(response)
        self.connections.discard(self)
        transport.set_protocol(_Discard(transport))
        with contextlib.suppress(OSError, NotImplementedError, RuntimeError):
            transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def _stop(self, response: bytes) -> None:
        self.refusal = response
        raise _Refused()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.waiting_since is None:
            self.waiting_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_line:
            self._stop(_refusal(414, "URI Too Long", "uri_too_long",
                                f"the request's URL exceeds {self.max_line} bytes (server.max_header_line_bytes)"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self.max_line:
            self._stop(self._too_large(f"header {name[:64].decode('latin-1')!r} exceeds {self.max_line} bytes"))
        if len(self.headers) >= self.max_headers:
            self._stop(self._too_large(f"the request has more than {self.max_headers} headers"))
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.header_bytes > self.max_header_bytes and self._exact_header_bytes() > self.max_header_bytes:
            self._stop(self._too_large(f"the request's headers exceed {self.max_header_bytes} bytes"))
        self.reading_headers = False
        self.header_bytes = 0
        self.waiting_since = None
        connections = len(self.connections)
        self.app = (self.at_limit if connections > self.max_connections
                    or len(self.tasks) >= self.max_connections else self.config.loaded_app)
        super().on_headers_complete()
        if self.draining:
            self.cycle.keep_alive = False

    def _exact_header_bytes(self) -> int:
        """The request line and headers as sent; only computed when the bytes read say it may be over."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self.reading_headers = True
        super().on_message_complete()

    def idle(self) -> bool:
        """No request is being read or answered on this connection."""
        return self.cycle is None or self.cycle.response_complete

    def drain(self) -> None:
        """Shutting down: the request being answered, or one still arriving, is the connection's last."""
        self.draining = True
        if not self.idle():
            self.cycle.keep_alive = False

    def check_header_deadline(self, now: float) -> None:
        """Close the connection if a request's headers have taken longer than `header_timeout`.

        A connection that sent part of a request gets a 408; one that sent
        nothing is closed quietly, as an idle keep-alive connection is.
        """
        if self.waiting_since is None or now - self.waiting_since < self.header_timeout:
            return
        if self.header_bytes:
            self.refuse(_refusal(408, "Request Timeout", "header_timeout",
                                 f"the request's headers did not arrive within {self.header_timeout:g}s "
                                 "(server.header_timeout); send the whole request at once"))
        else:
            self.refuse(b"")


# --------------------------------------------------------------------------
# running


class GatewayServer(uvicorn.Server):
    """uvicorn's Server with header deadlines, SIGHUP -> `on_reload`, and a drain that counts what it cut."""

    def __init__(self, config: uvicorn.Config, drain_timeout: float,
                 on_reload: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(config)
        self.drain_timeout = drain_timeout
        self.on_reload = on_reload
        self.cut = 0  # requests still running when the drain time ran out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloading: asyncio.Task[None] | None = None
        # sse-starlette ends every stream as soon as a shutdown signal arrives; here streams drain instead.
        from sse_starlette.sse import AppStatus

        AppStatus.disable_automatic_graceful_drain()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    async def on_tick(self, counter: int) -> bool:
        if counter % 10 == 0:
            now = asyncio.get_running_loop().time()
            for connection in list(self.server_state.connections):
                if isinstance(connection, LimitedHttpProtocol):
                    connection.check_header_deadline(now)
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Our handlers while serving; unlike uvicorn's, nothing is re-raised after, so the exit status is ours."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handlers = {signal.SIGINT: self.handle_exit, signal.SIGTERM: self.handle_exit, signal.SIGHUP: self.handle_hup}
        original = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C stops waiting
        else:
            self.should_exit = True

    def handle_hup(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_reload)

    def _start_reload(self) -> None:
        if self.on_reload is None:
            log.warning("SIGHUP ignored: this worker reloads when its supervisor (pid %d) gets SIGHUP", os.getppid())
        elif self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self.on_reload())
        else:
            log.warning("SIGHUP ignored: a reload is already running")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, let running requests and streams finish up to `drain_timeout`, then cut the rest."""
        running = len(self.server_state.tasks)
        log.info("draining: no new connections; %d request(s) running, waiting up to %gs", running,
                 self.drain_timeout)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await self._close_idle_connections()
        await asyncio.sleep(0.1)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wait_tasks_to_complete(), timeout=self.drain_timeout)
        left = [task for task in self.server_state.tasks if not task.done()]
        if left:
            self.cut = len(left)
            log.warning("drain time (%gs) ran out: cut %d request(s) or stream(s) still running", self.drain_timeout,
                        self.cut)
            await _cut(left, self.server_state.connections)
        elif running:
            log.info("drained: every running request finished")
        if not self.force_exit:
            await self.lifespan.shutdown()


    async def _close_idle_connections(self) -> None:
        """Busy connections close after their answer; idle ones close after a moment's grace.

        A client may have sent a request on a connection that looks idle (just
        accepted, or kept alive) a moment before the signal; closing it at once
        would fail that request, so what arrives within the grace is answered.
        """
        connections = self.server_state.connections
        ours = [c for c in connections if isinstance(c, LimitedHttpProtocol)]
        for connection in ours:
            connection.drain()
        if any(connection.idle() for connection in ours):
            await asyncio.sleep(min(IDLE_GRACE_SECONDS, self.drain_timeout))
        for connection in list(connections):
            connection.shutdown()  # idle ones close now, busy ones after their answer


async def _cut(tasks: list[asyncio.Task[None]], connections: set[Any]) -> None:
    """Close the clients' connections, then cancel their requests (no 500 is written on a closed connection)."""
    for connection in list(connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.close()
    logging.getLogger("uvicorn.error").addFilter(_not_a_cut_request)
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)


def _not_a_cut_request(record: logging.LogRecord) -> bool:
    """uvicorn logs a cancelled request as an ASGI exception; at the end of a drain that is expected."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, asyncio.CancelledError)


@dataclass
class Listen:
    """What `gateway up` resolved: where to listen and the server settings."""

    host: str
    port: int
    limits: ServerSettings
    drain_timeout: float


def uvicorn_config(app: Any, listen: Listen, **kwargs: Any) -> uvicorn.Config:
    config = uvicorn.Config(app, host=listen.host, port=listen.port, log_level="warning", access_log=False,
                            http="gateway.server:LimitedHttpProtocol",
                            timeout_keep_alive=listen.limits.keep_alive_timeout,  # type: ignore[arg-type]
                            **kwargs)
    config.gateway_limits = listen.limits  # type: ignore[attr-defined]  # read by LimitedHttpProtocol
    return config


def serve(app: Any, sock: socket.socket, listen: Listen,
          on_reload: Callable[[], Awaitable[None]] | None = None) -> int:
    """Serve `app` on `sock` until SIGTERM/SIGINT; 0, or DRAIN_CUT_EXIT when the drain cut requests."""
    raise_open_file_limit(listen.limits.max_connections)
    server = GatewayServer(uvicorn_config(app, listen), listen.drain_timeout, on_reload)
    server.run(sockets=[sock])
    return DRAIN_CUT_EXIT if server.cut else 0


# --------------------------------------------------------------------------
# several workers


class GatewayProcess(multiprocess.Process):
    """A uvicorn worker process running our server (limits, drain) rather than uvicorn's."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GatewayServer(self.config, self.config.gateway_drain_timeout)  # type: ignore[attr-defined]
        return self._server


class GatewaySupervisor(multiprocess.Multiprocess):
    """uvicorn's worker supervisor; SIGHUP checks the config first, and only a valid one replaces the workers.

    uvicorn's own SIGHUP restarts every worker, one by one (the new one ready
    before the old one is stopped, which then drains). Here that happens only
    after the new config has loaded without problems, so a broken file never
    takes a worker down. The workers' in-memory state is new; pins are in
    Redis (required for workers) and survive.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], config_path: str,
                 check: Callable[[Config], str | None]) -> None:
        super().__init__(config, sockets)
        self.config_path = config_path
        self.check = check
        # uvicorn's supervisor builds its workers from the module's `Process`; ours runs GatewayServer.
        multiprocess.Process = GatewayProcess  # type: ignore[misc]

    def handle_hup(self) -> None:
        try:
            config = load_config(self.config_path)
            problem = self.check(config)
            if problem:
                raise ConfigError([f"{self.config_path}: {problem}"])
        except ConfigError as exc:
            for line in exc.problems:
                log.error("reload refused: %s", line)
            log.error("reload refused: the workers keep serving the previous config")
            return
        log.info("reload: %s is valid; replacing the workers one by one", self.config_path)
        self.config.gateway_limits = config.server  # type: ignore[attr-defined]
        self.restart_all()

    def exit_status(self) -> int:
        """DRAIN_CUT_EXIT when any worker's drain cut requests (or a worker failed), else 0."""
        codes = [p.exitcode for p in self.processes]
        return 0 if all(code == 0 for code in codes) else DRAIN_CUT_EXIT


def serve_workers(app_path: str, sock: socket.socket, listen: Listen, workers: int, config_path: str,
                  check: Callable[[Config], str | None]) -> int:
    """Run `workers` processes serving the app factory at `app_path` on `sock`; their drain decides the status."""
    raise_open_file_limit(listen.limits.max_connections)
    config = uvicorn_config(app_path, listen, factory=True, workers=workers,
                            timeout_worker_healthcheck=60)  # a worker loads the router before it is ready
    config.gateway_drain_timeout = listen.drain_timeout  # type: ignore[attr-defined]
    supervisor = GatewaySupervisor(config, [sock], config_path, check)
    supervisor.run()
    return supervisor.exit_status()
