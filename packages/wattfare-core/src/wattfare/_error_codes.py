"""Wattfare's error codes and the HTTP status each is answered with: one table for the server and the SDK.

The server answers a refusal with its code's status; the SDK gives an error event inside a stream (a 200
with no status of its own) the status of its code. Both read this table, so they cannot disagree.
"""

from __future__ import annotations

from typing import Final, Literal

ErrorCode = Literal[
    "auth",
    "not_connected",
    "budget_exceeded",
    "budget_busy",
    "funding_invalid",
    "grant_invalid",
    "invalid_request",
    "model_not_found",
    "rate_limited",
    "upstream",
    "unavailable",
    "internal",
]

STATUS_BY_CODE: Final[dict[str, int]] = {
    "auth": 401,
    "not_connected": 402,
    "budget_exceeded": 402,
    "budget_busy": 429,
    "funding_invalid": 402,
    "grant_invalid": 402,
    "invalid_request": 400,
    "model_not_found": 404,
    "rate_limited": 429,
    "upstream": 502,
    "unavailable": 503,
    "internal": 500,
}
