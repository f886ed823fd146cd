"""The one function that turns a Wattfare SDK error into the LiteLLM exception a Router understands.

LiteLLM passes its own exception classes through unchanged, and its Router decides retries,
cooldowns and fallbacks from them: 401, 402, 404, 408, 429 and 5xx cool a deployment down, other 4xx
do not, and nearly every error falls back. So per-user refusals (the codes in `PER_USER_REFUSALS`)
become `WattfareUserRefusalError`s (a 400 that never falls back), while deployment-level failures (a
bad secret key, the provider's rate limit or outage) keep the classes that retry, cool down and fall
back. A busy budget (`budget_busy`) is per-user too, though waiting heals it: the Router can only retry
an error it may also fall back from (measured on litellm 1.110.2), so the SDK retries it inside the
attempt (see `_call.router_retries`) and what is still busy afterwards is a refusal like the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

import httpx
from litellm.exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)

import wattfare
from wattfare_litellm.errors import (
    WattfareBudgetBusyError,
    WattfareBudgetExceededError,
    WattfareFundingInvalidError,
    WattfareGrantInvalidError,
    WattfareNotConnectedError,
    WattfarePaymentRequiredError,
    WattfareUserRefusalError,
)

PROVIDER = "wattfare"

# Wattfare's error codes for the state of one end user (or one grant): never retried, never a cooldown, never a
# fallback to another deployment, whatever their HTTP status. A code added here gets all of that.
PER_USER_REFUSALS: Final = frozenset(
    {"not_connected", "budget_exceeded", "funding_invalid", "grant_invalid", "budget_busy"}
)

# The class a refusal is raised as, by code; a refusal whose code is not here is the base class of its status.
_REFUSAL_CLASSES: Final[Mapping[str, type[WattfareUserRefusalError]]] = {
    "not_connected": WattfareNotConnectedError,
    "budget_exceeded": WattfareBudgetExceededError,
    "funding_invalid": WattfareFundingInvalidError,
    "grant_invalid": WattfareGrantInvalidError,
    "budget_busy": WattfareBudgetBusyError,
}


def _error_object(exc: wattfare.APIStatusError) -> Mapping[str, object] | None:
    body = exc.body
    if isinstance(body, Mapping):
        error = cast("Mapping[str, object]", body).get("error")
        if isinstance(error, Mapping):
            return dict(cast("Mapping[str, object]", error))
    return None


def _response(exc: wattfare.APIStatusError) -> httpx.Response:
    # LiteLLM reads `retry-after` from an exception's response to size a cooldown; keep the request id too.
    headers: dict[str, str] = {}
    if isinstance(exc, wattfare.RateLimitError) and exc.retry_after is not None:
        headers["retry-after"] = f"{exc.retry_after:g}"
    if exc.request_id:
        headers["wattfare-request-id"] = exc.request_id
    request = httpx.Request("POST", "https://wattfare.invalid/api/v1/chat/completions")
    return httpx.Response(exc.status_code, headers=headers, request=request)


def _from_status(exc: wattfare.APIStatusError, message: str, model: str) -> Exception:
    status = exc.status_code
    body = _error_object(exc)
    if isinstance(exc, wattfare.AuthenticationError):
        return AuthenticationError(message=message, llm_provider=PROVIDER, model=model)
    if isinstance(exc, wattfare.RateLimitError):
        return RateLimitError(message=message, llm_provider=PROVIDER, model=model, response=_response(exc))
    if isinstance(exc, wattfare.NotFoundError):
        return NotFoundError(message=message, model=model, llm_provider=PROVIDER, body=body)
    if isinstance(exc, wattfare.BadRequestError):
        return BadRequestError(message=message, model=model, llm_provider=PROVIDER, body=body)  # pyright: ignore[reportUnknownMemberType]
    if status in (408, 504):
        return Timeout(message=message, model=model, llm_provider=PROVIDER)
    if status == 502:
        return BadGatewayError(message=message, llm_provider=PROVIDER, model=model)
    if status == 503:
        return ServiceUnavailableError(message=message, llm_provider=PROVIDER, model=model)
    if status == 403:
        return PermissionDeniedError(message=message, llm_provider=PROVIDER, model=model, response=_response(exc))
    if status >= 500:
        return InternalServerError(message=message, llm_provider=PROVIDER, model=model)
    if status >= 400:
        # An unforeseen 4xx is a problem with this request, not with the deployment: no cooldown.
        return BadRequestError(message=message, model=model, llm_provider=PROVIDER, body=body)  # pyright: ignore[reportUnknownMemberType]
    return APIError(status_code=status, message=message, llm_provider=PROVIDER, model=model)


def litellm_error(exc: wattfare.WattfareError, *, model: str, app_user_id: str | None) -> Exception:
    """The LiteLLM exception for a Wattfare SDK error (the caller raises it `from exc`).

    Args:
        exc: What the Wattfare SDK raised.
        model: The model asked for, without the `wattfare/` prefix.
        app_user_id: The end user the request was for (None for a grant's).
    """
    message = str(exc)
    if isinstance(exc, wattfare.APIStatusError) and (
        exc.code in PER_USER_REFUSALS or isinstance(exc, wattfare.PaymentRequiredError)
    ):
        return _refusal(exc, model=model, app_user_id=app_user_id)
    if isinstance(exc, wattfare.APIStatusError):
        return _from_status(exc, message, model)
    if isinstance(exc, wattfare.APITimeoutError):
        return Timeout(message=message, model=model, llm_provider=PROVIDER)
    if isinstance(exc, wattfare.APIConnectionError | wattfare.StreamError):
        return APIConnectionError(message=message, llm_provider=PROVIDER, model=model)
    if isinstance(exc, wattfare.UsageError):
        return BadRequestError(message=message, model=model, llm_provider=PROVIDER)  # pyright: ignore[reportUnknownMemberType]
    # An APIError without a status: Wattfare answered something the SDK could not read.
    return APIError(status_code=500, message=message, llm_provider=PROVIDER, model=model)


def _refusal(exc: wattfare.APIStatusError, *, model: str, app_user_id: str | None) -> WattfareUserRefusalError:
    default = WattfarePaymentRequiredError if exc.status_code == 402 else WattfareUserRefusalError
    cls = _REFUSAL_CLASSES.get(exc.code or "", default)
    return cls(
        exc.message,
        model=model,
        app_user_id=app_user_id,
        code=exc.code,
        request_id=exc.request_id,
        resets_at=exc.resets_at if isinstance(exc, wattfare.BudgetExceededError) else None,
        retry_after=exc.retry_after if isinstance(exc, wattfare.RateLimitError) else None,
        body=_error_object(exc),
        wattfare_status_code=exc.status_code,
    )
