"""One structured log line per request, and the record it is written from.

Each request gets a `RequestRecord` (held in a context variable by `middleware.ObservedRequests`): whoever knows
something about the request notes it there in one line (the key's app and mode, the proxy's model and hashed end
user, the meter's hold and charge, the error code of the envelope), and the line is written once, when the
request has ended. What it may hold is fixed by its fields: ids, counts, amounts, durations; never a prompt, a
completion, a key, or an app's user id in clear (the end user is the opaque `wf_…` id the provider sees).

`configure_logging` sets up structlog once per process (`WATTFARE_LOG_FORMAT`: `json`, one object per line, or
`console` for people); `logging_config` gives uvicorn the same formatter for its own lines and every stdlib
logger of the server, so a process writes one format. Until it is called (an app built in a test), no request
line is written.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Final, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

LogFormat = Literal["json", "console"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("json", "console")
LOG_LEVELS: Final[tuple[str, ...]] = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass(slots=True)
class RequestRecord:
    """What is known about one request so far; `None` is "not known" (or not this kind of request)."""

    started: float
    request_id: str | None = None
    app_id: str | None = None
    mode: str | None = None
    # The metered endpoint (`chat.completions`, `embeddings`), the model asked for and the hashed end user.
    metered: str | None = None
    model: str | None = None
    user: str | None = None
    stream: bool | None = None
    # The error code of the envelope answered (or of the event that ended a stream).
    code: str | None = None
    held_nano: int | None = None
    cost_nano: int | None = None
    # perf_counter() when the upstream was called, and seconds until its answer's headers came.
    upstream_started: float | None = None
    upstream_ttfb: float | None = None


_current: ContextVar[RequestRecord | None] = ContextVar("wattfare_request_record", default=None)


def begin(record: RequestRecord) -> Token[RequestRecord | None]:
    """Make `record` the current request's (for the task serving it and every task it starts)."""
    return _current.set(record)


def end(token: Token[RequestRecord | None]) -> None:
    """The request `begin` returned `token` for is over."""
    _current.reset(token)


def current() -> RequestRecord | None:
    """The record of the request being served, if any (None outside a request, as in the background sweep)."""
    return _current.get()


def note_caller(app_id: str, mode: str) -> None:
    """The request is the app `app_id`'s, in `mode` (its key says so)."""
    record = _current.get()
    if record is not None:
        record.app_id = app_id
        record.mode = mode


def note_metered(request_id: str, metered: str, model: str, user: str, *, stream: bool = False) -> None:
    """A metered request was admitted: its id, endpoint, model and end user (the hashed `wf_…` id only)."""
    record = _current.get()
    if record is not None:
        record.request_id = request_id
        record.metered = metered
        record.model = model
        record.user = user
        record.stream = stream


def note_code(code: str) -> None:
    """The request is answered (or its stream ends) with the error envelope's `code`."""
    record = _current.get()
    if record is not None:
        record.code = code


# ------------------------------------------------------------------------------------------------ the line

_requests: FilteringBoundLogger | None = None
# The least severe request line written: INFO writes every request, ERROR only the 5xx ones (None: no line).
_least: int | None = None


def _json(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def _renderer(log_format: str, stream: TextIO, *, tracebacks: bool = True) -> list[Processor]:
    if log_format == "json":
        # Tracebacks become a string field, so a line stays one JSON object (a request line never has one).
        traceback: list[Processor] = [structlog.processors.format_exc_info] if tracebacks else []
        return [*traceback, structlog.processors.JSONRenderer(serializer=_json)]
    return [structlog.dev.ConsoleRenderer(colors=stream.isatty())]


def _level_number(level: str) -> int:
    # uvicorn's `trace` is below debug; structlog knows the standard levels only.
    return logging.DEBUG if level == "trace" else logging.getLevelNamesMapping()[level.upper()]


def configure_logging(log_format: str, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog for this process: request lines in `log_format`, at `level` and above, on `stream`."""
    global _requests, _least
    if log_format not in LOG_FORMATS:
        raise ValueError(f"WATTFARE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    out = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *_renderer(log_format, out, tracebacks=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level_number(level)),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    # Bound now, so a line goes straight to its processors (not through structlog's lazy proxy each time).
    _requests = structlog.get_logger("wattfare.requests").bind()
    _least = _level_number(level)


def stdlib_formatter(log_format: LogFormat = "json") -> logging.Formatter:
    """A `logging` formatter writing stdlib records (uvicorn's, the server's loggers) as `log_format` lines."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderer(log_format, sys.stderr)],
    )


_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """The `log_config` of uvicorn: every stdlib logger (uvicorn's and the server's) writes `log_format` to stderr."""
    upper = "DEBUG" if level == "trace" else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"wattfare": {"()": f"{__name__}.stdlib_formatter", "log_format": log_format}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "wattfare", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": upper},
        # uvicorn's loggers propagate to the root's handler; uvicorn sets their levels itself.
        "loggers": {name: {"handlers": [], "propagate": True} for name in _UVICORN_LOGGERS},
    }


def log_request(endpoint: str, status: int, code: str, seconds: float, record: RequestRecord) -> None:
    """Write the request's line (when `configure_logging` was called), from what its record holds.

    `endpoint` is the method and route template (`POST /api/v1/chat/completions`), as the metrics label it.
    """
    logger, least = _requests, _least
    error = status >= 500
    if logger is None or least is None or least > (logging.ERROR if error else logging.INFO):
        return  # not configured, or below the level: nothing is built
    fields: dict[str, object] = {
        "endpoint": endpoint,
        "status": status,
        "code": code,
        "duration_ms": round(seconds * 1000, 3),
    }
    if record.app_id is not None:
        fields["app_id"] = record.app_id
        fields["mode"] = record.mode
    if record.request_id is not None:  # a metered request: what it was, for whom, what it cost
        fields["request_id"] = record.request_id
        fields["metered"] = record.metered
        fields["model"] = record.model
        fields["stream"] = record.stream
        fields["user"] = record.user
        if record.held_nano is not None:
            fields["held_nano"] = record.held_nano
        if record.cost_nano is not None:
            fields["cost_nano"] = record.cost_nano
            fields["cost_usd"] = usd_text(record.cost_nano)
        if record.upstream_started is not None:
            fields["upstream_ms"] = round((record.started + seconds - record.upstream_started) * 1000, 3)
        if record.upstream_ttfb is not None:
            fields["upstream_ttfb_ms"] = round(record.upstream_ttfb * 1000, 3)
    if error:
        logger.error("request", **fields)
    else:
        logger.info("request", **fields)


def usd_text(nanos: int) -> str:
    """Nano-USD as exact decimal text of US dollars (`1234` -> `0.000001234`), without a Decimal per line."""
    sign = "-" if nanos < 0 else ""
    whole, fraction = divmod(abs(nanos), 1_000_000_000)
    return f"{sign}{whole}.{fraction:09d}"
