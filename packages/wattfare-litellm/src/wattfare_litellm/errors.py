"""What a LiteLLM caller catches when Wattfare refuses one end user.

A spent cap, a missing connection or rejected funding is the state of one end user, not of the
deployment that many users share. Wattfare answers these with HTTP 402, but LiteLLM's Router would
cool a deployment down after a 402 (and retry a 429), so one user's empty budget would block every
other user for the cooldown. These exceptions are therefore `litellm.BadRequestError`s with
`status_code` 400: the Router neither retries them nor cools the deployment down, and they reach
the caller with their class and data intact. The real status stays on `wattfare_status_code`.

* litellm.BadRequestError
  + WattfarePaymentRequiredError    - 402: the end user must act on their budget
    + WattfareNotConnectedError     - `not_connected`: show "Connect AI budget"
    + WattfareBudgetExceededError   - `budget_exceeded`: cap reached until `resets_at`
    + WattfareFundingInvalidError   - `funding_invalid`: the user must reconnect

Every other Wattfare error becomes LiteLLM's matching class (see the package README).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from litellm.exceptions import BadRequestError

__all__ = [
    "WattfareBudgetExceededError",
    "WattfareFundingInvalidError",
    "WattfareNotConnectedError",
    "WattfarePaymentRequiredError",
]


def _restore(cls: type[WattfarePaymentRequiredError], state: dict[str, Any]) -> WattfarePaymentRequiredError:
    # LiteLLM's exceptions take required constructor arguments that pickle's default path cannot supply.
    exc = cls.__new__(cls)
    exc.__dict__.update(state)
    exc.args = (state.get("message", ""),)
    return exc


class WattfarePaymentRequiredError(BadRequestError):
    """Wattfare refused the request because of the end user's budget (HTTP 402); never retried.

    Args:
        message: What Wattfare said.
        model: The model asked for (without the `wattfare/` prefix).
        app_user_id: The end user the request was for.
        code: Wattfare's error code (`budget_exceeded`, `not_connected`, `funding_invalid`).
        request_id: Wattfare's id for the request, when known.
        resets_at: When the user's spend window resets (UTC), for a spent cap.
        body: Wattfare's error object (`{"code", "message", "type", "param", ...}`).

    Attributes:
        app_user_id: The end user the request was for.
        code: Wattfare's error code.
        request_id: Wattfare's id for the request.
        resets_at: When the spend window resets (UTC), if known.
        wattfare_status_code: The HTTP status Wattfare answered (402); `status_code` is 400 on purpose.
    """

    wattfare_status_code = 402

    def __init__(
        self,
        message: str,
        *,
        model: str,
        app_user_id: str | None,
        code: str | None = None,
        request_id: str | None = None,
        resets_at: datetime | None = None,
        body: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message=message, model=model, llm_provider="wattfare", body=body)  # pyright: ignore[reportUnknownMemberType]
        self.app_user_id = app_user_id
        self.code = code
        self.request_id = request_id
        self.resets_at = resets_at

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), dict(self.__dict__)))

    def __str__(self) -> str:
        details = [f"app user {self.app_user_id!r}"] if self.app_user_id else []
        if self.resets_at is not None:
            details.append(f"resets at {self.resets_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        head = f"{self.message} [{self.code}]" if self.code else self.message
        return f"{head} ({'; '.join(details)})" if details else head

    __repr__ = __str__


class WattfareNotConnectedError(WattfarePaymentRequiredError):
    """`not_connected`: the end user has no active connection to this app; show "Connect AI budget"."""


class WattfareBudgetExceededError(WattfarePaymentRequiredError):
    """`budget_exceeded`: the end user's monthly cap for this app is reached until `resets_at`."""


class WattfareFundingInvalidError(WattfarePaymentRequiredError):
    """`funding_invalid`: the end user's funding was rejected; they must reconnect."""
