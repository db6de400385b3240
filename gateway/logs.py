"""Log set-up: one line per request, readable text by default or JSON (`--log-format json`)."""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from typing import Any

REQUEST_LOGGER = "gateway.request"


_stamp_cache: tuple[int, str] = (0, "")


def _stamp(created: float) -> str:
    global _stamp_cache
    second = int(created)
    if _stamp_cache[0] != second:  # one strftime per second, not per line
        _stamp_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + "Z")
    return _stamp_cache[1]


def text_line(created: float, level: str, name: str, msg: str, fields: dict[str, Any] | None) -> str:
    """`2026-11-26T17:03:51Z INFO gateway.request request trace_id=… model=… pinned=true …`"""
    line = f"{_stamp(created)} {level} {name} {msg}"
    if fields:
        line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
    return line


def json_line(created: float, level: str, name: str, msg: str, fields: dict[str, Any] | None) -> str:
    """One JSON object: ts, level, logger, msg, and the fields."""
    return json.dumps({"ts": round(created, 3), "level": level, "logger": name, "msg": msg, **(fields or {})},
                      default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = text_line(record.created, record.levelname, record.name, record.getMessage(),
                         getattr(record, "fields", None))
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json_line(record.created, record.levelname, record.name, record.getMessage(), fields)


class BatchingHandler(logging.StreamHandler):
    """Writes lines in batches: at most every `interval` seconds or `limit` bytes.

    A write to stderr per request is a large share of a pinned decision's cost
    (README, Performance); batching spreads one write over many lines. Warnings
    and errors are written at once, and everything pending is written at exit.
    """

    def __init__(self, interval: float = 0.2, limit: int = 64 * 1024) -> None:
        super().__init__()
        self.interval = interval
        self.limit = limit
        self._pending: list[str] = []
        self._size = 0
        threading.Thread(target=self._tick, name="log-flush", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._add(line, urgent=record.levelno >= logging.WARNING)

    def append(self, line: str) -> None:
        """Queue a line that did not go through a LogRecord (the request log)."""
        with self.lock:  # type: ignore[union-attr]
            self._add(line, urgent=False)

    def _add(self, line: str, urgent: bool) -> None:
        self._pending.append(line + "\n")
        self._size += len(line) + 1
        if urgent or self._size >= self.limit:
            self._write()

    def _write(self) -> None:
        if self._pending:
            self.stream.write("".join(self._pending))
            self._pending.clear()
            self._size = 0
            self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _tick(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


class RequestLog:
    """The one line per request, written straight into the batching handler.

    Going through `logging.Logger.info` (record creation, caller lookup,
    locking) costs a large share of a pinned decision (README, Performance);
    this formats the same line and queues it directly. Without `configure()`
    (embedding the app, tests) it falls back to the logging module.
    """

    def __init__(self) -> None:
        self.handler: BatchingHandler | None = None
        self.line = text_line
        self.enabled = True

    def write(self, fields: dict[str, Any]) -> None:
        if self.handler is None:
            logging.getLogger(REQUEST_LOGGER).info("request", extra={"fields": fields})
            return
        self.handler.append(self.line(time.time(), "INFO", REQUEST_LOGGER, "request", fields))


REQUEST_LOG = RequestLog()


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send the gateway's logs to stderr in `fmt`; request lines are INFO."""
    handler = BatchingHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    REQUEST_LOG.handler = handler
    REQUEST_LOG.line = json_line if fmt == "json" else text_line
    REQUEST_LOG.enabled = root.isEnabledFor(logging.INFO)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text
