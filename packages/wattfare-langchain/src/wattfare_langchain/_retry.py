"""Which errors LangChain's `with_retry` may retry: never one that waiting cannot fix.

LangChain retries every `Exception` by default. A spent cap or a missing connection (402) does not
heal by retrying, nor does a bad key, a bad request or an unknown model: retrying them only delays
the error the app must show, so they are refused whatever the caller's `retry_if_exception_type`.
A busy budget (`wattfare.BudgetBusyError`, a `RateLimitError`: the user's other requests in flight hold
their cap) does heal by waiting, so it stays retryable, like any rate limit.
"""

from __future__ import annotations

from collections.abc import Callable

from wattfare import AuthenticationError, BadRequestError, NotFoundError, PaymentRequiredError, UsageError

NEVER_RETRIED: tuple[type[Exception], ...] = (
    PaymentRequiredError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    UsageError,
)

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def retry_predicate(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    """The caller's retry rule (exception types or a predicate), minus the errors never retried."""

    def should_retry(exc: BaseException) -> bool:
        if isinstance(exc, NEVER_RETRIED):
            return False
        return retry_on(exc) if callable(retry_on) else isinstance(exc, retry_on)

    return should_retry
