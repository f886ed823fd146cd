"""Receive Wattfare's webhooks: verify a delivery and read it into a typed event.

Wattfare tells your backend when a user approves or revokes a connection, changes its cap, crosses a share of it,
or can no longer fund it, and when a member creates or revokes a one-time grant. Each delivery is signed the
Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`); `verify` checks it with the
`standardwebhooks` package and returns the event, or raises `WebhookVerificationError`. A FastAPI handler:

    from fastapi import FastAPI, Request, Response
    from wattfare import webhooks

    app = FastAPI()

    @app.post("/webhooks/wattfare")
    async def wattfare_webhook(request: Request) -> Response:
        try:
            event = webhooks.verify(await request.body(), request.headers, WEBHOOK_SECRET)
        except webhooks.WebhookVerificationError:
            return Response(status_code=400)
        if already_handled(event.id):  # a retry carries the same id
            return Response(status_code=204)
        match event:
            case webhooks.BudgetThreshold(percent=100, connection=connection):
                notify_cap_reached(connection.app_user_id, event.resets_at)
            case webhooks.ConnectionRevoked(connection=connection):
                mark_disconnected(connection.app_user_id)
            case _:
                pass  # types you do not handle, and ones added later (`UnknownEvent`)
        return Response(status_code=204)

Pass the body exactly as received (the signature covers its bytes), not re-serialised JSON. While a rotated secret's
old value is still valid, pass both, `[new_secret, old_secret]`: a delivery signed by either verifies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypedDict, cast

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _SignatureRejected

from wattfare._exceptions import WebhookVerificationError
from wattfare._webhook_events import (
    MODES,
    BudgetThreshold,
    ConnectionApproved,
    ConnectionCapChanged,
    ConnectionRevoked,
    FundingInvalid,
    GrantCreated,
    GrantRevoked,
    Mode,
    UnknownEvent,
    WebhookConnection,
    WebhookEvent,
    WebhookGrant,
)

__all__ = [
    "BudgetThreshold",
    "ConnectionApproved",
    "ConnectionCapChanged",
    "ConnectionRevoked",
    "FundingInvalid",
    "GrantCreated",
    "GrantRevoked",
    "UnknownEvent",
    "WebhookConnection",
    "WebhookEvent",
    "WebhookGrant",
    "WebhookVerificationError",
    "verify",
]

_HEADERS: Final = ("webhook-id", "webhook-timestamp", "webhook-signature")


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str | Sequence[str]) -> WebhookEvent:
    """Verify a webhook delivery and return its event.

    The signature must match one of the secrets and the timestamp be within 5 minutes of now (the Standard
    Webhooks tolerance); the body must then be a Wattfare event whose `id` is the `webhook-id`, so a body signed
    for one delivery cannot be replayed under another id. An event of a type this SDK does not know comes back as
    `UnknownEvent`, never as an error.

    Args:
        payload: The request body exactly as received.
        headers: The request headers: any mapping (Starlette's, httpx's, Django's `request.headers`, a dict);
            names in any case.
        secret: The endpoint's signing secret (`whsec_…`), or several while one is being rotated.

    Returns:
        The event, one of the `WebhookEvent` types.

    Raises:
        WebhookVerificationError: The delivery failed verification, or a secret is not a Standard Webhooks secret;
            act on nothing in it (answer 400).
    """
    hooks = _hooks(secret)
    text = _text(payload)
    received = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in _HEADERS if not received.get(name)]
    if missing:
        raise WebhookVerificationError(f"the webhook is missing the {', '.join(missing)} header(s)")
    _check_signature(hooks, text, received)
    event = _read(text)
    if event.id != received["webhook-id"]:
        raise WebhookVerificationError(
            f"the event id {event.id!r} is not the webhook-id {received['webhook-id']!r}: a body replayed under"
            " another id"
        )
    return event


def _hooks(secret: str | Sequence[str]) -> list[Webhook]:
    # Every secret is read before any delivery is checked: a mistyped one fails at once, not when rotation needs it.
    secrets = [secret] if isinstance(secret, str) else list(secret or ())
    if not secrets:
        raise WebhookVerificationError("no webhook signing secret given")
    hooks: list[Webhook] = []
    for position, value in enumerate(secrets, start=1):
        try:
            hooks.append(Webhook(value))
        except (ValueError, EmptyWebhookSecretError) as exc:
            raise WebhookVerificationError(
                f"webhook signing secret #{position} is not a Standard Webhooks secret (whsec_ + base64)"
            ) from exc
    return hooks


def _text(payload: bytes | str) -> str:
    # Checked up front, so the package's own UTF-8 decode (or encode, to sign) cannot fail inside the signature
    # check, where a ValueError means a malformed header.
    try:
        if isinstance(payload, bytes):
            return payload.decode()
        payload.encode()
    except UnicodeError as exc:
        raise WebhookVerificationError("the webhook payload is not UTF-8 text") from exc
    return payload


def _check_signature(hooks: list[Webhook], text: str, headers: dict[str, str]) -> None:
    rejection: _SignatureRejected | None = None
    for hook in hooks:
        try:
            hook.verify(text, headers, json_parse=False)
        except _SignatureRejected as exc:
            rejection = exc  # a wrong secret, or a stale timestamp (the same for every secret)
            continue
        except (ValueError, IndexError) as exc:
            # The package splits and base64-decodes the header unguarded: "v1", "v1,abc" escape as these.
            raise WebhookVerificationError("the webhook-signature header is malformed") from exc
        return
    raise WebhookVerificationError(f"the webhook failed verification: {rejection}") from rejection


# ---------------------------------------------------------------- reading the wire


class _Common(TypedDict):
    id: str
    timestamp: datetime
    mode: Mode
    app_id: str
    data: dict[str, Any]


class _NotAnEvent(Exception):
    pass


def _read(text: str) -> WebhookEvent:
    try:
        return _event(text)
    except _NotAnEvent as exc:
        raise WebhookVerificationError(f"the payload verified but is not a Wattfare event: {exc}") from None


def _event(text: str) -> WebhookEvent:
    try:
        body: object = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise _NotAnEvent(f"the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise _NotAnEvent("the body is not a JSON object")
    event = cast("dict[str, Any]", body)  # a JSON object's keys are always strings
    event_id, type_, timestamp = _string(event, "id", ""), _string(event, "type", ""), _instant(event, "timestamp", "")
    mode = _string(event, "mode", "")
    if mode not in MODES:
        raise _NotAnEvent(f"mode {mode!r} is neither 'test' nor 'live'")
    common = _Common(
        id=event_id, timestamp=timestamp, mode=mode, app_id=_string(event, "appId", ""), data=_object(event, "data", "")
    )
    build = _BUILDERS.get(type_)
    return UnknownEvent(**common, type=type_) if build is None else build(common, common["data"])


def _reject_constant(name: str) -> object:
    raise _NotAnEvent(f"{name} is not a JSON number")


def _get(obj: dict[str, Any], key: str, path: str) -> object:
    if key not in obj:
        raise _NotAnEvent(f"{path}{key} is missing")
    return obj[key]


def _object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = _get(obj, key, path)
    if not isinstance(value, dict):
        raise _NotAnEvent(f"{path}{key} is not an object")
    return cast("dict[str, Any]", value)


def _string(obj: dict[str, Any], key: str, path: str) -> str:
    value = _get(obj, key, path)
    if not isinstance(value, str):
        raise _NotAnEvent(f"{path}{key} is not a string")
    return value


def _count(obj: dict[str, Any], key: str, path: str) -> int:
    value = _get(obj, key, path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _NotAnEvent(f"{path}{key} is not an integer")
    return value


def _usd(obj: dict[str, Any], key: str, path: str) -> Decimal:
    # JSON fractions arrive as Decimal (parse_float), whole numbers as int: neither ever passed through a float.
    value = _get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _NotAnEvent(f"{path}{key} is not a number")
    return Decimal(value)


def _usd_or_none(obj: dict[str, Any], key: str, path: str) -> Decimal | None:
    return None if obj.get(key) is None else _usd(obj, key, path)


def _instant(obj: dict[str, Any], key: str, path: str) -> datetime:
    text = _string(obj, key, path)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _NotAnEvent(f"{path}{key} is not an ISO 8601 instant") from None
    # The wire always says UTC; a naive time can only mean UTC, never the machine's local zone.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _connection(data: dict[str, Any]) -> WebhookConnection:
    raw = _object(data, "connection", "data.")
    return WebhookConnection(
        id=_string(raw, "id", "data.connection."),
        app_user_id=_string(raw, "appUserId", "data.connection."),
        state=_string(raw, "state", "data.connection."),
        monthly_usd=_usd(_object(raw, "limits", "data.connection."), "monthlyUsd", "data.connection.limits."),
    )


def _grant(data: dict[str, Any]) -> WebhookGrant:
    raw = _object(data, "grant", "data.")
    return WebhookGrant(
        id=_string(raw, "id", "data.grant."),
        requests_allowed=_count(raw, "requestsAllowed", "data.grant."),
        requests_used=_count(raw, "requestsUsed", "data.grant."),
        max_usd=_usd_or_none(raw, "maxUsd", "data.grant."),
        expires_at=_instant(raw, "expiresAt", "data.grant."),
        state=_string(raw, "state", "data.grant."),
    )


def _cap_changed(common: _Common, data: dict[str, Any]) -> ConnectionCapChanged:
    previous = _usd(_object(data, "previousLimits", "data."), "monthlyUsd", "data.previousLimits.")
    return ConnectionCapChanged(**common, connection=_connection(data), previous_monthly_usd=previous)


def _budget_threshold(common: _Common, data: dict[str, Any]) -> BudgetThreshold:
    return BudgetThreshold(
        **common,
        connection=_connection(data),
        percent=_count(data, "percent", "data."),
        spent_usd=_usd(data, "spentUsd", "data."),
        resets_at=_instant(data, "resetsAt", "data."),
    )


def _funding_invalid(common: _Common, data: dict[str, Any]) -> FundingInvalid:
    return FundingInvalid(**common, connection=_connection(data), reason=_string(data, "reason", "data."))


_BUILDERS: Final[dict[str, Callable[[_Common, dict[str, Any]], WebhookEvent]]] = {
    "connection.approved": lambda common, data: ConnectionApproved(**common, connection=_connection(data)),
    "connection.revoked": lambda common, data: ConnectionRevoked(**common, connection=_connection(data)),
    "connection.cap_changed": _cap_changed,
    "budget.threshold": _budget_threshold,
    "funding.invalid": _funding_invalid,
    "grant.created": lambda common, data: GrantCreated(**common, grant=_grant(data)),
    "grant.revoked": lambda common, data: GrantRevoked(**common, grant=_grant(data)),
}
