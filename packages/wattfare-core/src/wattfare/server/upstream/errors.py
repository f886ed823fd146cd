"""Turning an upstream's refusal (HTTP error or mid-stream error chunk) into Wattfare's envelope."""

from __future__ import annotations

import re
from typing import Any

import orjson

from wattfare.server.errors import ApiError
from wattfare.server.json_value import as_object

_MESSAGE_LIMIT = 500
# Addresses in a provider's message may name its internal hosts; apps are told the message without them.
_URL = re.compile(r"\b(?:https?|wss?)://\S+", re.IGNORECASE)


def _told(message: object) -> str:
    """A provider's message as apps may read it: bounded, with URLs taken out."""
    return _URL.sub("[address removed]", str(message))[:_MESSAGE_LIMIT]


def _upstream_message(body: bytes | None) -> str | None:
    if not body:
        return None
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = as_object((as_object(parsed) or {}).get("error")) or {}
    message = error.get("message")
    return _told(message) if message else None


def from_status(status: int, body: bytes | None, headers: dict[str, str] | None = None) -> ApiError:
    """The client-facing error for an upstream's non-200 answer."""
    detail = _upstream_message(body)
    said = f" The provider said: {detail}" if detail else ""
    if status in (400, 413, 422):
        return ApiError("invalid_request", f"The model provider rejected the request.{said}", status=status)
    if status == 404:
        return ApiError("model_not_found", f"The model provider does not serve this model.{said}")
    if status == 429:
        retry_after = (headers or {}).get("retry-after")
        extra_headers = {"Retry-After": retry_after} if retry_after else {}
        return ApiError("rate_limited", f"The model provider is rate limiting.{said}", headers=extra_headers)
    if status in (408, 504, 524):
        return ApiError("upstream", f"The model provider timed out.{said}", status=504)
    if status in (401, 403, 402):
        # The operator's provider credentials failed: not the caller's fault, nothing they can fix.
        return ApiError("upstream", f"The model provider refused Wattfare's credentials ({status}).{said}")
    return ApiError("upstream", f"The model provider failed ({status}).{said}")


# What OpenRouter answers a key past its limit (402; 403 "Key limit exceeded" on some paths) or disabled (401).
_FUNDING_STATUSES = (401, 402, 403)
CEILING_REACHED = "provider ceiling reached"


def from_stream_error(error: object, *, member_funded: bool = False, ceiling: bool = False) -> ApiError:
    """The client-facing error for an upstream's mid-stream error chunk (`finish_reason: "error"`).

    On a request paid with a member's key (`member_funded`: their own, or their ceiling key when `ceiling`), an
    error chunk with a funding status (402 above all: the key's limit was reached mid-answer) is that member's
    `funding_invalid`, as the same refusal before the answer would be.
    """
    found = as_object(error) or {}
    message = found.get("message")
    detail = f" The provider said: {_told(message)}" if message else ""
    code = found.get("code")
    status = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    if member_funded and status in _FUNDING_STATUSES:
        return ceiling_error(status, detail) if ceiling else _member_key_error(status, detail)
    return ApiError("upstream", f"The model provider failed mid-stream.{detail}")


def ceiling_error(status: int | None, said: str = "") -> ApiError:
    """A request on a member's ceiling key refused at its hard limit (or disabled): `funding_invalid`."""
    return ApiError(
        "funding_invalid",
        f"The user's spending ceiling at the model provider stopped this request ({CEILING_REACHED}, {status}): "
        f"they can add funding or raise their caps in their Wattfare account.{said}",
    )


def from_ceiling_key_status(status: int, body: bytes | None, headers: dict[str, str] | None = None) -> ApiError:
    """The client-facing error for an upstream's non-200 answer to a request on a member's ceiling key."""
    if status in _FUNDING_STATUSES:
        detail = _upstream_message(body)
        return ceiling_error(status, f" The provider said: {detail}" if detail else "")
    return from_status(status, body, headers)


def _member_key_error(status: int | None, said: str) -> ApiError:
    return ApiError(
        "funding_invalid",
        f"The user's own provider key was refused ({status}); they need to relink or top it up.{said}",
    )


def from_member_key_status(status: int, body: bytes | None, headers: dict[str, str] | None = None) -> ApiError:
    """The client-facing error for an upstream's non-200 answer to a request paid with the member's own key.

    401/402/403 then mean the member's funding failed (key deleted, out of credit, key limit reached: OpenRouter
    answers the last with 402 or 403), which only the member can fix: `funding_invalid`, shown as "Reconnect".
    """
    if status in _FUNDING_STATUSES:
        detail = _upstream_message(body)
        return _member_key_error(status, f" The provider said: {detail}" if detail else "")
    return from_status(status, body, headers)
