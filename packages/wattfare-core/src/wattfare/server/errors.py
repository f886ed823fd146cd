"""The one place where refusals become HTTP: Wattfare's error envelope.

Envelope: `{"error": {"code", "message", "type", "param"}}`: wattfare.com's `code`/`message` plus
OpenAI's `type`/`param`, so stock OpenAI clients parse it. 402s say `x-should-retry: false`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson
from starlette.responses import Response

from wattfare._error_codes import STATUS_BY_CODE, ErrorCode
from wattfare.server.observability.request_log import note_code

_OPENAI_TYPE: Final[dict[str, str]] = {
    "auth": "authentication_error",
    "not_connected": "insufficient_quota",
    "budget_exceeded": "insufficient_quota",
    # Busy is retryable: OpenAI clients back off and retry a `rate_limit_error` 429 by themselves.
    "budget_busy": "rate_limit_error",
    "funding_invalid": "insufficient_quota",
    "grant_invalid": "insufficient_quota",
    "invalid_request": "invalid_request_error",
    "model_not_found": "invalid_request_error",
    "rate_limited": "rate_limit_error",
    "upstream": "api_error",
    "unavailable": "api_error",
    "internal": "api_error",
}


class ApiError(Exception):
    """A refusal on its way to the client, with everything its envelope needs."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        extra: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.status = status or STATUS_BY_CODE[code]
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, object]:
        """The JSON body."""
        error: dict[str, object] = {
            "code": self.code,
            "message": self.message,
            "type": _OPENAI_TYPE[self.code],
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}

    def sse_event(self) -> bytes:
        """The same envelope as the SSE event that ends a stream cut short, followed by `[DONE]`."""
        note_code(self.code)
        return b"data: " + orjson.dumps(self.envelope()) + b"\n\ndata: [DONE]\n\n"

    def response(self, request_id: str | None = None) -> Response:
        """The HTTP response."""
        note_code(self.code)
        headers = dict(self.headers)
        if self.status == 402:
            headers["x-should-retry"] = "false"
        if request_id:
            headers["Wattfare-Request-Id"] = request_id
        return Response(orjson.dumps(self.envelope()), self.status, headers, media_type="application/json")


def unavailable() -> ApiError:
    """Wattfare's database cannot be reached: nothing can be metered, so nothing is served (retry shortly)."""
    return ApiError("unavailable", "Wattfare's database is unavailable; retry shortly.", headers={"Retry-After": "1"})


def invalid(message: str, param: str | None = None, *, status: int = 400) -> ApiError:
    """A malformed request."""
    return ApiError("invalid_request", message, status=status, param=param)
