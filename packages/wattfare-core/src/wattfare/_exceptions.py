"""Every error the SDK raises, and the one function that turns an error response into one.

Our exception hierarchy:

* WattfareError
  + UsageError                  - a programmer mistake (bad key, bad argument); fix the code
  + APIError                    - the request failed at run time
    + APIConnectionError        - Wattfare unreachable (already retried); back off and retry later
      + APITimeoutError
    + StreamError               - a stream broke mid-way; output so far is partial, never retried
    + APIStatusError            - Wattfare answered with an error status
      + AuthenticationError     - 401 `auth`: bad, missing or revoked key; alert the developer
      + PaymentRequiredError    - 402: the end user must act on their budget
        + NotConnectedError     - `not_connected`: show "Connect AI budget"
        + BudgetExceededError   - `budget_exceeded`: cap reached until `resets_at`
        + FundingInvalidError   - `funding_invalid`: the user must reconnect
        + GrantInvalidError     - `grant_invalid`: the one-time grant is unknown, expired, used up or revoked
      + BadRequestError         - 400/413/422 `invalid_request`: fix the request
      + NotFoundError           - 404 `model_not_found`
      + RateLimitError          - 429 `rate_limited`: wait `retry_after` seconds
        + BudgetBusyError       - 429 `budget_busy`: the user's requests in flight hold the budget; retry shortly
      + UpstreamError           - 502/504 `upstream`: the model provider failed; retry later
  + WebhookVerificationError    - a webhook delivery failed verification (`wattfare.webhooks.verify`); answer 400

A class exists only where the caller's action differs: a spent cap is not a rate limit, so backoff
code never retries it; a busy budget is one (the cap affords the request once the user's other
requests in flight settle), so backoff code retries it, and it is never a `BudgetExceededError`.
Every error keeps its data as plain attributes (no live HTTP objects), so it pickles, and `str(exc)`
names the status, code, message and request id. A webhook that fails verification is no API error: nothing was
requested of Wattfare, so it has no status, code or request id, and retry code never sees it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

from wattfare._error_codes import STATUS_BY_CODE

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetBusyError",
    "BudgetExceededError",
    "FundingInvalidError",
    "GrantInvalidError",
    "NotConnectedError",
    "NotFoundError",
    "PaymentRequiredError",
    "RateLimitError",
    "StreamError",
    "UpstreamError",
    "UsageError",
    "WattfareError",
    "WebhookVerificationError",
    "error_from_response",
    "error_from_stream_event",
    "parse_retry_after",
]


def _restore(cls: type[WattfareError], args: tuple[Any, ...], state: dict[str, Any]) -> WattfareError:
    # Rebuilds without calling __init__, whose keyword-only fields pickle's default path cannot supply.
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class WattfareError(Exception):
    """Base of every error the SDK raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class UsageError(WattfareError):
    """A programmer mistake, such as a missing or malformed secret key; never raised by the network."""


class WebhookVerificationError(WattfareError):
    """A webhook delivery failed verification: act on nothing in it, and answer 400.

    Raised by `wattfare.webhooks.verify` when a header is missing or malformed, the signature matches none of the
    secrets, the timestamp is outside the tolerance, a secret is not a Standard Webhooks one, or a payload that
    verified is not a Wattfare event (its `id` differing from the `webhook-id` header included). `str(exc)` says
    which; it never contains a secret.
    """


class APIError(WattfareError):
    """A request to Wattfare failed at run time.

    Attributes:
        message: What went wrong, in words.
        request_id: Wattfare's id for the request (`Wattfare-Request-Id`), when known.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def _details(self) -> list[str]:
        return [f"request id {self.request_id}"] if self.request_id else []

    def __str__(self) -> str:
        details = self._details()
        return f"{self.message} ({'; '.join(details)})" if details else self.message


class APIConnectionError(APIError):
    """Wattfare could not be reached (after the client's retries)."""


class APITimeoutError(APIConnectionError):
    """The request timed out (after the client's retries)."""


class StreamError(APIError):
    """A stream broke mid-way (connection lost or ended early); the output received so far is partial.

    Never retried by the client: part of the answer was already delivered and charged.
    """


class APIStatusError(APIError):
    """Wattfare answered with an error status.

    Attributes:
        status_code: The HTTP status (for an error event inside a stream: the status its code maps to).
        code: The envelope's `error.code` (`budget_exceeded`, ...), or None when the body had none.
        param: The envelope's `error.param`: the offending request field, if any.
        body: The decoded JSON body, or the raw text when it was not JSON.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        param: str | None = None,
        body: object = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        self.code = code
        self.param = param
        self.body = body

    def __str__(self) -> str:
        head = f"{self.status_code} {self.code}" if self.code else str(self.status_code)
        return f"{head}: {super().__str__()}"


class AuthenticationError(APIStatusError):
    """401 `auth`: the secret key is invalid, missing or revoked."""


class PaymentRequiredError(APIStatusError):
    """402: the end user must act on their budget before the app can spend it. Never retried."""


class NotConnectedError(PaymentRequiredError):
    """402 `not_connected`: this app user has no active connection; show "Connect AI budget"."""


class BudgetExceededError(PaymentRequiredError):
    """402 `budget_exceeded`: the user's monthly cap for this app is reached.

    Attributes:
        resets_at: When the spend window resets (UTC), from the envelope's `resetsAt`, if given.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        param: str | None = None,
        body: object = None,
        request_id: str | None = None,
        resets_at: datetime | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, param=param, body=body, request_id=request_id)
        self.resets_at = resets_at

    def _details(self) -> list[str]:
        when = self.resets_at
        resets = [f"resets at {when.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"] if when else []
        return resets + super()._details()


class FundingInvalidError(PaymentRequiredError):
    """402 `funding_invalid`: the user's funding was rejected upstream; they must reconnect."""


class GrantInvalidError(PaymentRequiredError):
    """402 `grant_invalid`: the one-time grant is unknown, expired, used up, revoked or over its dollar cap.

    Whichever it is, the grant will not serve another request: ask the member for a new one.
    """


class BadRequestError(APIStatusError):
    """400/413/422 `invalid_request`: the request is malformed or too large."""


class NotFoundError(APIStatusError):
    """404 `model_not_found`: unknown model (or path)."""


class RateLimitError(APIStatusError):
    """429 `rate_limited`: too many requests.

    Attributes:
        retry_after: Seconds to wait before retrying, from the `Retry-After` header, if given.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        param: str | None = None,
        body: object = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, param=param, body=body, request_id=request_id)
        self.retry_after = retry_after

    def _details(self) -> list[str]:
        wait = [f"retry after {self.retry_after:g}s"] if self.retry_after is not None else []
        return wait + super()._details()


class BudgetBusyError(RateLimitError):
    """429 `budget_busy`: the user's cap affords this request, but their other requests in flight hold it right now.

    Not a spent cap (that is `BudgetExceededError`) and not the provider's rate limit: it clears as soon as
    the user's requests in flight settle, so it is retried like any `RateLimitError` (after `retry_after`).
    """


class UpstreamError(APIStatusError):
    """502/504 `upstream`: the model provider failed or timed out."""


_CLASS_BY_CODE: Final[dict[str, type[APIStatusError]]] = {
    "auth": AuthenticationError,
    "not_connected": NotConnectedError,
    "budget_exceeded": BudgetExceededError,
    "budget_busy": BudgetBusyError,
    "funding_invalid": FundingInvalidError,
    "grant_invalid": GrantInvalidError,
    "invalid_request": BadRequestError,
    "model_not_found": NotFoundError,
    "rate_limited": RateLimitError,
    "upstream": UpstreamError,
}

# For a response whose body names no known code: the class its status alone implies.
_CLASS_BY_STATUS: Final[dict[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    404: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    502: UpstreamError,
    504: UpstreamError,
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or None if absent or invalid.

    Args:
        value: The header value.
        now: The current time, for an HTTP date; defaults to the system clock.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _parse_resets_at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive; a plain dict is not, so look the name up both ways.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _build(
    status_code: int,
    error: Mapping[str, Any],
    *,
    body: object,
    request_id: str | None,
    retry_after: float | None,
    fallback_message: str,
) -> APIStatusError:
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, str) and raw_code else None
    raw_message = error.get("message")
    message = raw_message if isinstance(raw_message, str) and raw_message else fallback_message
    raw_param = error.get("param")
    param = raw_param if isinstance(raw_param, str) else None
    cls = _CLASS_BY_CODE.get(code or "") or _CLASS_BY_STATUS.get(status_code, APIStatusError)
    exc = cls(message, status_code=status_code, code=code, param=param, body=body, request_id=request_id)
    if isinstance(exc, RateLimitError):
        exc.retry_after = retry_after
    if isinstance(exc, BudgetExceededError):
        exc.resets_at = _parse_resets_at(error.get("resetsAt"))
    return exc


def _error_object(payload: object) -> Mapping[str, Any]:
    if isinstance(payload, Mapping):
        error = payload.get("error")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(error, Mapping):
            return error  # pyright: ignore[reportUnknownVariableType]
    return {}


def error_from_response(
    status_code: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> APIStatusError:
    """Map an HTTP error response to its typed exception.

    The envelope's `error.code` picks the class; without a known code, the status does; otherwise
    `APIStatusError`. The decoded body (or its raw text when it is not JSON) is kept on `body`.

    Args:
        status_code: The HTTP status.
        headers: The response headers (`Wattfare-Request-Id`, `Retry-After` are read).
        body: The raw response body.
        now: The current time, to read a `Retry-After` HTTP date; defaults to the system clock.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        payload: object = json.loads(text) if text else None
    except ValueError:
        payload = text
    error = _error_object(payload)
    reason = text.strip()[:200] if isinstance(payload, str) else ""
    return _build(
        status_code,
        error,
        body=payload,
        request_id=_header(headers, "wattfare-request-id"),
        retry_after=parse_retry_after(_header(headers, "retry-after"), now=now),
        fallback_message=f"HTTP {status_code}" + (f": {reason}" if reason else ""),
    )


def error_from_stream_event(payload: Mapping[str, Any], *, request_id: str | None = None) -> APIStatusError:
    """Map an SSE error event (`{"error": {...}}`, the same envelope as a response) to its typed exception.

    Args:
        payload: The decoded event data.
        request_id: The stream's request id.
    """
    error = _error_object(payload)
    code = error.get("code")
    if isinstance(code, int) and 100 <= code <= 599:
        # Some upstreams put an HTTP status in `code`; keep it as the status, not as a code.
        status_code, error = code, {**error, "code": None}
    else:
        status_code = STATUS_BY_CODE.get(code, 500) if isinstance(code, str) else 500
    rid = error.get("requestId")
    return _build(
        status_code,
        error,
        body=dict(payload),
        request_id=request_id or (rid if isinstance(rid, str) else None),
        retry_after=None,
        fallback_message="the stream was stopped by an error",
    )
