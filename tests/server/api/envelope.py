"""The documented error envelope, as every API test checks it.

`{"error": {"code", "message", "type", "param"}}`: wattfare.com's `code`/`message` plus OpenAI's
`type`/`param`, with the status each code is documented to use.
"""

from __future__ import annotations

from typing import Any

import httpx

OPENAI_TYPE = {
    "auth": "authentication_error",
    "not_connected": "insufficient_quota",
    "budget_exceeded": "insufficient_quota",
    "budget_busy": "rate_limit_error",
    "funding_invalid": "insufficient_quota",
    "grant_invalid": "insufficient_quota",
    "invalid_request": "invalid_request_error",
    "model_not_found": "invalid_request_error",
    "upstream": "api_error",
    "unavailable": "api_error",
}

_ANY = object()


def assert_error(response: httpx.Response, status: int, code: str, param: object = _ANY) -> dict[str, Any]:
    """Check that `response` is the documented envelope for `code`; return its `error` object.

    `param` is checked when given (None included); omitted, it only has to be present.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == OPENAI_TYPE[code]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "param" in error
    if param is not _ANY:
        assert error["param"] == param, error
    if status == 402:
        assert response.headers["x-should-retry"] == "false"
    return error
