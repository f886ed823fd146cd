"""When the client retries, and how long it waits: I/O-free, shared by `Wattfare` and `AsyncWattfare`.

The twins pass `now` and `jitter` in, so nothing here reads the clock or randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import httpx

from wattfare._exceptions import (
    APIConnectionError,
    APITimeoutError,
    BudgetBusyError,
    error_from_response,
    parse_retry_after,
)

RETRYABLE_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})


def connection_error(exc: httpx.RequestError) -> APIConnectionError:
    """Wrap a transport failure (the caller raises it `from exc`)."""
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:  # httpx raises this when the error was created without a request
        request = None
    where = f" ({request.method} {request.url.copy_with(query=None)})" if request is not None else ""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"Wattfare did not answer in time{where}")
    return APIConnectionError(f"could not reach Wattfare{where}: {type(exc).__name__}: {exc}")


def should_retry(status_code: int, headers: httpx.Headers) -> bool:
    """Whether an error status may be retried: `x-should-retry` decides, then the status; a 402 never is."""
    if status_code == 402:
        # A spent cap, a missing connection or a spent grant does not heal by waiting; retrying only adds load.
        return False
    verdict = headers.get("x-should-retry")
    if verdict == "true":
        return True
    if verdict == "false":
        return False
    return status_code in RETRYABLE_STATUSES


def is_busy(response: httpx.Response) -> bool:
    """Whether an error response (read) is a `budget_busy` refusal: the user's requests in flight hold the budget."""
    return response.status_code == 429 and isinstance(
        error_from_response(response.status_code, response.headers, response.content), BudgetBusyError
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry and how long to wait: exponential backoff with jitter, honouring `Retry-After`.

    Attributes:
        max_retries: Retries after the first attempt.
        busy_retries: Retries of a `budget_busy` refusal instead, when set apart from `max_retries` (for a
            caller, such as LiteLLM's Router, that retries everything else itself but cannot retry a busy user).
        base_delay: The first backoff, in seconds; it doubles each retry.
        max_delay: The backoff's ceiling, in seconds.
        max_retry_after: The longest `Retry-After` waited out; a longer one is raised to the caller instead.
    """

    max_retries: int
    busy_retries: int | None = None
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retries: int, jitter: float) -> float:
        """The wait before retry number `retries + 1`; `jitter` in [0, 1) trims up to a quarter off."""
        return min(self.max_delay, self.base_delay * 2**retries) * (1 - 0.25 * jitter)

    def after_transport_error(self, retries: int, *, jitter: float) -> float | None:
        """Seconds to wait before retrying a connection error or timeout, or None to give up."""
        return self.backoff(retries, jitter) if retries < self.max_retries else None

    def after_status(self, retries: int, response: httpx.Response, *, now: datetime, jitter: float) -> float | None:
        """Seconds to wait before retrying an error response (read), or None to raise it."""
        limit = self.max_retries
        if self.busy_retries is not None and is_busy(response):
            limit = self.busy_retries
        if retries >= limit or not should_retry(response.status_code, response.headers):
            return None
        wait = parse_retry_after(response.headers.get("retry-after"), now=now)
        if wait is None:
            return self.backoff(retries, jitter)
        return wait if math.isfinite(wait) and wait <= self.max_retry_after else None
