"""What a LiteLLM caller catches when Wattfare refuses one end user.

A spent cap, a missing connection, rejected funding, a spent one-time grant or a budget busy with the
user's other requests in flight is the state of one end user (or one grant), not of the deployment that
many users share, and no other deployment may serve that user instead. Wattfare answers these with HTTP
402 (429 for a busy budget), but LiteLLM's Router would cool a deployment down after a 402 or a 429 (and
retry a 429), so one user's empty or busy budget would block every other user for the cooldown; and it
falls back on almost any error, so a fallback to a model outside Wattfare would serve the user anyway,
billed to the app. These exceptions are therefore `litellm.BadRequestError`s with `status_code` 400,
which the Router neither retries nor cools a deployment down for, and also LiteLLM
`GuardrailRaisedException`s, which it never falls back from (see `WattfareUserRefusalError`). They reach
the caller with their class and data intact; the real status stays on `wattfare_status_code`.

* litellm.BadRequestError (and litellm.exceptions.GuardrailRaisedException)
  + WattfareUserRefusalError          - one end user's state: never retried by a Router, never falls back
    + WattfarePaymentRequiredError    - 402: the end user must act on their budget
      + WattfareNotConnectedError     - `not_connected`: show "Connect AI budget"
      + WattfareBudgetExceededError   - `budget_exceeded`: cap reached until `resets_at`
      + WattfareFundingInvalidError   - `funding_invalid`: the user must reconnect
      + WattfareGrantInvalidError     - `grant_invalid`: the one-time grant is unknown, spent, expired or revoked
    + WattfareBudgetBusyError         - 429 `budget_busy`: still busy after the SDK's retries; retry shortly

Every other Wattfare error becomes LiteLLM's matching class (see the package README).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from litellm.exceptions import BadRequestError, GuardrailRaisedException

__all__ = [
    "WattfareBudgetBusyError",
    "WattfareBudgetExceededError",
    "WattfareFundingInvalidError",
    "WattfareGrantInvalidError",
    "WattfareNotConnectedError",
    "WattfarePaymentRequiredError",
    "WattfareUserRefusalError",
]


def _restore(cls: type[WattfareUserRefusalError], state: dict[str, Any]) -> WattfareUserRefusalError:
    # LiteLLM's exceptions take required constructor arguments that pickle's default path cannot supply.
    exc = cls.__new__(cls)
    exc.__dict__.update(state)
    exc.args = (state.get("message", ""),)
    return exc


class WattfareUserRefusalError(BadRequestError, GuardrailRaisedException):
    """Wattfare refused the request because of the end user's state; never retried by a Router, never a fallback.

    Why a `GuardrailRaisedException` too: LiteLLM's Router falls back from a `BadRequestError` under
    `fallbacks` and `default_fallbacks` (measured on litellm 1.110.2). Its only per-fallback hooks,
    `fallback_access_check` and `fallback_budget_check`, see the request rather than the error and would
    have to be configured by every app. What the Router never falls back from, retries or cools a
    deployment down for is a guardrail's intervention: a deliberate refusal of this one request, which
    a refused end user is. In litellm 1.110.2:
    `litellm/router_rust/core.py` lines 508-514 (`failure_kind`: an error `is_guardrail_intervention`
    accepts is reported to the router core as the kind "GuardrailIntervention", ahead of its class
    names), `litellm/integrations/custom_guardrail.py` lines 93-122 (`is_guardrail_intervention`: any
    `GuardrailRaisedException` is one), and `litellm/litellm_core_utils/exception_mapping_utils.py`
    lines 2547-2548 (a `BadRequestError` subclass reaches the Router unchanged). The fallback walk
    itself is in the compiled router core, so tests/adapters/litellm/test_router.py pins the behaviour
    for every fallback setting, sync and async, streamed or not.

    Args:
        message: What Wattfare said.
        model: The model asked for (without the `wattfare/` prefix).
        app_user_id: The end user the request was for.
        code: Wattfare's error code (`budget_exceeded`, `not_connected`, `funding_invalid`, ...).
        request_id: Wattfare's id for the request, when known.
        resets_at: When the user's spend window resets (UTC), for a spent cap.
        retry_after: Seconds Wattfare asked to wait before retrying (`Retry-After`), for a busy budget.
        body: Wattfare's error object (`{"code", "message", "type", "param", ...}`).
        wattfare_status_code: The HTTP status Wattfare answered; the class's own when None.

    Attributes:
        app_user_id: The end user the request was for.
        code: Wattfare's error code.
        request_id: Wattfare's id for the request.
        resets_at: When the spend window resets (UTC), if known.
        retry_after: Seconds to wait before retrying, if Wattfare said (a busy budget).
        wattfare_status_code: The HTTP status Wattfare answered; `status_code` is 400 on purpose.
    """

    wattfare_status_code: int = 402

    def __init__(
        self,
        message: str,
        *,
        model: str,
        app_user_id: str | None,
        code: str | None = None,
        request_id: str | None = None,
        resets_at: datetime | None = None,
        retry_after: float | None = None,
        body: Mapping[str, object] | None = None,
        wattfare_status_code: int | None = None,
    ) -> None:
        # The code is part of the message: the LiteLLM proxy answers with the message alone.
        text = f"{message} [{code}]" if code else message
        super().__init__(message=text, model=model, llm_provider="wattfare", body=body)  # pyright: ignore[reportUnknownMemberType]
        # GuardrailRaisedException's attributes (its __init__ would overwrite the message and status).
        self.guardrail_name = "wattfare"
        self.blocked_content = False
        self.app_user_id = app_user_id
        self.code = code
        self.request_id = request_id
        self.resets_at = resets_at
        self.retry_after = retry_after
        if wattfare_status_code is not None:
            self.wattfare_status_code = wattfare_status_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), dict(self.__dict__)))

    def __str__(self) -> str:
        details = [f"app user {self.app_user_id!r}"] if self.app_user_id else []
        if self.resets_at is not None:
            details.append(f"resets at {self.resets_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")
        if self.retry_after is not None:
            details.append(f"retry after {self.retry_after:g}s")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        return f"{self.message} ({'; '.join(details)})" if details else self.message

    __repr__ = __str__


class WattfarePaymentRequiredError(WattfareUserRefusalError):
    """Wattfare refused the request because of the end user's budget (HTTP 402); never retried."""


class WattfareNotConnectedError(WattfarePaymentRequiredError):
    """`not_connected`: the end user has no active connection to this app; show "Connect AI budget"."""


class WattfareBudgetExceededError(WattfarePaymentRequiredError):
    """`budget_exceeded`: the end user's monthly cap for this app is reached until `resets_at`."""


class WattfareFundingInvalidError(WattfarePaymentRequiredError):
    """`funding_invalid`: the end user's funding was rejected; they must reconnect."""


class WattfareGrantInvalidError(WattfarePaymentRequiredError):
    """`grant_invalid`: the one-time grant is unknown, used up, expired, revoked or over its dollar cap.

    `app_user_id` is None: a grant names no app user. Ask the member for a new grant.
    """


class WattfareBudgetBusyError(WattfareUserRefusalError):
    """`budget_busy`: the end user's cap affords the request, but their other requests in flight hold it now.

    Not a spent cap: it clears as the user's requests in flight settle. The Wattfare SDK has already
    retried it (after each `Retry-After`) before this is raised; a Router call's retries are the Router's
    own `num_retries`, done by the SDK inside the one attempt, since a Router that retried it itself would
    fall back from it afterwards. Retry later (`retry_after` seconds), or tell the user to wait for their
    other requests.
    """

    wattfare_status_code: int = 429
