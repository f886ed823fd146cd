"""The request log: one line per request, written after it ended, from the record its code filled in."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.cli import one_error_line, wattfare_over
from tests.support.wattfare_server import free_port
from wattfare.server.errors import ApiError
from wattfare.server.observability import request_log
from wattfare.server.observability.middleware import ObservedRequests
from wattfare.server.observability.request_log import configure_logging, note_caller, note_metered


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Request lines configured onto a buffer (JSON, info), unconfigured again afterwards."""
    buffer = io.StringIO()
    configure_logging("json", "info", buffer)
    yield buffer
    structlog.reset_defaults()
    request_log._requests = None


async def served(request: Request) -> Response:
    note_caller("app_1", "test")
    note_metered("req_1", "chat.completions", "openai/gpt-4o-mini", "wf_0123")
    return PlainTextResponse("hello")


async def refused(request: Request) -> Response:
    raise ApiError("budget_exceeded", "Spending cap reached for this period.")


async def broken(request: Request) -> Response:
    raise LookupError("a bug")


async def _refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


def app() -> Starlette:
    inner = Starlette(
        routes=[
            Route("/users/{user_id:path}", served),
            Route("/refused", refused, methods=["POST"]),
            Route("/broken", broken),
        ],
        exception_handlers={ApiError: _refusal},
    )
    return ObservedRequests(inner)  # type: ignore[return-value]


async def call(method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


def records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.anyio
async def test_each_request_is_one_json_line_naming_its_route_not_its_path(lines: io.StringIO) -> None:
    await call("GET", "/users/alice@example.com")

    (line,) = records(lines)
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["endpoint"] == "GET /users/{user_id:path}"
    assert line["status"] == 200
    assert line["code"] == "ok"
    assert line["app_id"] == "app_1"
    assert line["mode"] == "test"
    assert line["model"] == "openai/gpt-4o-mini"
    assert line["user"] == "wf_0123"
    assert line["request_id"] == "req_1"
    assert isinstance(line["duration_ms"], float)
    assert "timestamp" in line
    assert "alice" not in lines.getvalue()


@pytest.mark.anyio
async def test_a_refusal_is_logged_with_its_error_code(lines: io.StringIO) -> None:
    answer = await call("POST", "/refused")

    assert answer.status_code == 402
    (line,) = records(lines)
    assert (line["status"], line["code"]) == (402, "budget_exceeded")


@pytest.mark.anyio
async def test_an_unhandled_error_is_logged_as_a_500_at_error_level(lines: io.StringIO) -> None:
    answer = await call("GET", "/broken")

    assert answer.status_code == 500
    (line,) = records(lines)
    assert (line["status"], line["code"], line["level"]) == (500, "5xx", "error")


@pytest.mark.anyio
async def test_a_path_no_route_matches_is_logged_as_unmatched(lines: io.StringIO) -> None:
    await call("DELETE", "/sk_test_secret-in-a-path")

    (line,) = records(lines)
    assert line["endpoint"] == "DELETE unmatched"
    assert "secret" not in lines.getvalue()


@pytest.mark.anyio
async def test_lines_below_the_level_are_not_written() -> None:
    buffer = io.StringIO()
    configure_logging("json", "warning", buffer)
    try:
        await call("GET", "/users/u1")
        await call("GET", "/broken")
    finally:
        structlog.reset_defaults()
        request_log._requests = None

    assert [line["status"] for line in records(buffer)] == [500]


@pytest.mark.anyio
async def test_the_console_format_is_for_people(lines: io.StringIO) -> None:
    buffer = io.StringIO()
    configure_logging("console", "info", buffer)
    await call("GET", "/users/u1")

    text = buffer.getvalue()
    assert "request" in text
    assert "endpoint='GET /users/{user_id:path}'" in text or "endpoint=GET /users/{user_id:path}" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="WATTFARE_LOG_FORMAT"):
        configure_logging("xml", "info")


@pytest.mark.anyio
async def test_nothing_is_written_before_logging_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    await call("GET", "/users/u1")

    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_the_stdlib_formatter_writes_the_servers_own_records_as_json() -> None:
    record = logging.LogRecord("wattfare.meter", logging.WARNING, __file__, 1, "settling %s is deferred", ("r1",), None)
    line = json.loads(request_log.stdlib_formatter("json").format(record))

    assert line["event"] == "settling r1 is deferred"
    assert (line["level"], line["logger"]) == ("warning", "wattfare.meter")


@pytest.mark.parametrize(("variable", "value"), [("WATTFARE_LOG_FORMAT", "xml"), ("WATTFARE_LOG_LEVEL", "loud")])
@pytest.mark.parametrize("command", ["serve", "dev"])
def test_serve_and_dev_refuse_an_unknown_log_setting_in_one_line(
    command: str, variable: str, value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wattfare = wattfare_over(f"sqlite:///{tmp_path / 'w.db'}", monkeypatch, tmp_path)
    # Set through monkeypatch, so what `dev` sets by default does not outlive the test.
    monkeypatch.setenv("WATTFARE_PUBLIC_URL", "http://127.0.0.1:8787")
    monkeypatch.setenv("WATTFARE_LOG_FORMAT", "json")
    monkeypatch.setenv(variable, value)

    failed = wattfare(command, "--port", str(free_port()), code=1)

    assert variable in one_error_line(failed)
    assert not (tmp_path / "w.db").exists()  # refused before anything started


def test_the_uvicorn_log_config_sends_every_logger_through_one_formatter() -> None:
    config = request_log.logging_config("json", "warning")
    logging.config.dictConfig(config)
    try:
        handler = logging.getLogger().handlers[0]
        line = json.loads(handler.format(logging.LogRecord("uvicorn.error", logging.ERROR, "", 1, "boom", (), None)))
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        logging.getLogger().handlers.clear()

    assert (line["event"], line["level"], line["logger"]) == ("boom", "error", "uvicorn.error")
    assert logging.getLogger("uvicorn.access").handlers == []
