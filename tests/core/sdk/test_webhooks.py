"""`wattfare.webhooks.verify`: deliveries signed by the real `standardwebhooks` package, read into typed events."""

from __future__ import annotations

import base64
import dataclasses
import json
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import wattfare
from wattfare import webhooks
from wattfare.webhooks import (
    BudgetThreshold,
    ConnectionApproved,
    ConnectionCapChanged,
    ConnectionRevoked,
    FundingInvalid,
    GrantCreated,
    GrantRevoked,
    UnknownEvent,
    WebhookConnection,
    WebhookEvent,
    WebhookGrant,
    WebhookVerificationError,
    verify,
)

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MSG_ID = "msg_7Yk2pQx"
WHEN = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)

# Amounts with more significant digits than a float holds: read through a float, they would come back changed.
CONNECTION_JSON = (
    '{"id": "conn_1", "appUserId": "user-42", "state": "active", "limits": {"monthlyUsd": 5.000000000000000001}}'
)
CONNECTION_DATA = f'{{"connection": {CONNECTION_JSON}}}'
CONNECTION = WebhookConnection(
    id="conn_1", app_user_id="user-42", state="active", monthly_usd=Decimal("5.000000000000000001")
)
GRANT_JSON = (
    '{"id": "grt_9", "requestsAllowed": 3, "requestsUsed": 1, "maxUsd": 0.12345678901234567,'
    ' "expiresAt": "2026-12-06T16:00:00Z", "state": "active"}'
)
GRANT = WebhookGrant(
    id="grt_9",
    requests_allowed=3,
    requests_used=1,
    max_usd=Decimal("0.12345678901234567"),
    expires_at=datetime(2026, 12, 6, 16, 0, tzinfo=UTC),
    state="active",
)
COMMON: dict[str, Any] = {"id": MSG_ID, "timestamp": WHEN, "mode": "test", "app_id": "app_1"}


def body(type_: str, data: str, *, event_id: str = MSG_ID, mode: str = "test") -> str:
    """An event body as the wire writes it (the data as literal JSON, so amounts keep every digit)."""
    return (
        f'{{"id": "{event_id}", "type": "{type_}", "timestamp": "2026-12-05T16:00:00Z", "mode": "{mode}",'
        f' "appId": "app_1", "data": {data}}}'
    )


def signed(payload: str, *, secret: str = SECRET, msg_id: str = MSG_ID, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, payload),
    }


def raw_data(payload: str) -> dict[str, Any]:
    return json.loads(payload, parse_float=Decimal)["data"]


TYPED_EVENTS: list[tuple[str, WebhookEvent]] = [
    (
        body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}'),
        ConnectionApproved(**COMMON, data={}, connection=CONNECTION),
    ),
    (
        body("connection.revoked", f'{{"connection": {CONNECTION_JSON}}}'),
        ConnectionRevoked(**COMMON, data={}, connection=CONNECTION),
    ),
    (
        body(
            "connection.cap_changed",
            f'{{"connection": {CONNECTION_JSON}, "previousLimits": {{"monthlyUsd": 10.000000000000000002}}}}',
        ),
        ConnectionCapChanged(
            **COMMON, data={}, connection=CONNECTION, previous_monthly_usd=Decimal("10.000000000000000002")
        ),
    ),
    (
        body(
            "budget.threshold",
            f'{{"connection": {CONNECTION_JSON}, "percent": 80, "spentUsd": 4.100000000000000001,'
            ' "resetsAt": "2027-01-01T00:00:00Z"}',
        ),
        BudgetThreshold(
            **COMMON,
            data={},
            connection=CONNECTION,
            percent=80,
            spent_usd=Decimal("4.100000000000000001"),
            resets_at=datetime(2027, 1, 1, tzinfo=UTC),
        ),
    ),
    (
        body("funding.invalid", f'{{"connection": {CONNECTION_JSON}, "reason": "key_refused"}}'),
        FundingInvalid(**COMMON, data={}, connection=CONNECTION, reason="key_refused"),
    ),
    (body("grant.created", f'{{"grant": {GRANT_JSON}}}'), GrantCreated(**COMMON, data={}, grant=GRANT)),
    (body("grant.revoked", f'{{"grant": {GRANT_JSON}}}'), GrantRevoked(**COMMON, data={}, grant=GRANT)),
]


def decimals_in(value: object) -> list[object]:
    """Every amount field of an event, wherever it sits."""
    found: list[object] = []
    for name in ("monthly_usd", "previous_monthly_usd", "spent_usd", "max_usd"):
        if hasattr(value, name):
            found.append(getattr(value, name))
    for name in ("connection", "grant"):
        if hasattr(value, name):
            found.extend(decimals_in(getattr(value, name)))
    return found


@pytest.mark.parametrize(("payload", "expected"), TYPED_EVENTS, ids=[event.type for _, event in TYPED_EVENTS])
def test_every_event_type_is_read_into_its_typed_event_with_exact_decimal_amounts(
    payload: str, expected: WebhookEvent
) -> None:
    event = verify(payload, signed(payload), SECRET)

    assert event == dataclasses.replace(expected, data=raw_data(payload))
    amounts = decimals_in(event)
    assert amounts
    assert all(type(amount) is Decimal for amount in amounts)


def test_a_whole_dollar_amount_is_a_decimal_and_a_missing_grant_cap_is_none() -> None:
    grant = GRANT_JSON.replace('"maxUsd": 0.12345678901234567', '"maxUsd": null')
    payload = body("grant.created", f'{{"grant": {grant}}}')
    connection = CONNECTION_JSON.replace("5.000000000000000001", "5")
    cap_payload = body("connection.approved", f'{{"connection": {connection}}}')

    event = verify(payload, signed(payload), SECRET)
    cap_event = verify(cap_payload, signed(cap_payload), SECRET)

    assert isinstance(event, GrantCreated)
    assert event.grant.max_usd is None
    assert isinstance(cap_event, ConnectionApproved)
    assert type(cap_event.connection.monthly_usd) is Decimal
    assert cap_event.connection.monthly_usd == Decimal(5)


def test_instants_with_an_offset_or_none_come_back_as_utc() -> None:
    payload = body(
        "budget.threshold",
        f'{{"connection": {CONNECTION_JSON}, "percent": 50, "spentUsd": 2.5, "resetsAt": "2027-01-01T00:00:00"}}',
    ).replace("2026-12-05T16:00:00Z", "2026-12-05T18:00:00+02:00")

    event = verify(payload, signed(payload), SECRET)

    assert isinstance(event, BudgetThreshold)
    assert event.timestamp == WHEN
    assert event.timestamp.tzinfo is UTC
    assert event.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert event.resets_at.tzinfo is UTC


def test_unknown_types_come_back_as_unknown_events_with_their_data() -> None:
    payload = body("budget.forecast", '{"connection": {"id": "conn_1"}, "projectedUsd": 7.25}', mode="live")

    event = verify(payload, signed(payload), SECRET)

    assert isinstance(event, UnknownEvent)
    assert event.type == "budget.forecast"
    assert event.mode == "live"
    assert event.data == {"connection": {"id": "conn_1"}, "projectedUsd": Decimal("7.25")}


def test_unknown_fields_are_ignored_and_kept_in_data() -> None:
    connection = CONNECTION_JSON.replace('"state": "active"', '"state": "active", "region": "eu"')
    payload = body("connection.approved", f'{{"connection": {connection}, "via": "popup"}}').replace(
        '"appId"', '"deliveryAttempt": 2, "appId"'
    )

    event = verify(payload, signed(payload), SECRET)

    assert isinstance(event, ConnectionApproved)
    assert event.connection == CONNECTION
    assert event.data["via"] == "popup"
    assert event.data["connection"]["region"] == "eu"


@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "str"])
def test_bytes_and_str_payloads_both_verify(as_bytes: bool) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}, "note": "café ☕"}}')

    event = verify(payload.encode() if as_bytes else payload, signed(payload), SECRET)

    assert event.data["note"] == "café ☕"


@pytest.mark.parametrize(
    "headers",
    [
        lambda h: {name.title(): value for name, value in h.items()},
        lambda h: {name.upper(): value for name, value in h.items()},
        lambda h: httpx.Headers(h),
        lambda h: Headers(h),
    ],
    ids=["Title-Case", "UPPER-CASE", "httpx.Headers", "starlette.Headers"],
)
def test_header_names_match_in_any_case_and_from_any_mapping(headers: Any) -> None:
    payload = body("connection.revoked", f'{{"connection": {CONNECTION_JSON}}}')

    event = verify(payload, headers(signed(payload)), SECRET)

    assert isinstance(event, ConnectionRevoked)


@pytest.mark.anyio
async def test_a_starlette_handler_verifies_the_body_and_headers_it_received() -> None:
    async def handler(request: Request) -> Response:
        try:
            event = webhooks.verify(await request.body(), request.headers, SECRET)
        except webhooks.WebhookVerificationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"type": event.type, "id": event.id})

    app = Starlette(routes=[Route("/hook", handler, methods=["POST"])])
    payload = body("funding.invalid", f'{{"connection": {CONNECTION_JSON}, "reason": "ceiling_reached"}}')

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as client:
        good = await client.post("/hook", content=payload, headers=signed(payload))
        forged = await client.post("/hook", content=payload, headers=signed(payload, secret=OLD_SECRET))

    assert (good.status_code, good.json()) == (200, {"type": "funding.invalid", "id": MSG_ID})
    assert forged.status_code == 400
    assert "No matching signature" in forged.json()["error"]


# ---------------------------------------------------------------- secrets and rotation


@pytest.mark.parametrize("signed_with", [SECRET, OLD_SECRET], ids=["new", "old"])
def test_while_a_secret_rotates_a_delivery_signed_with_either_verifies(signed_with: str) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')

    event = verify(payload, signed(payload, secret=signed_with), [SECRET, OLD_SECRET])

    assert event.id == MSG_ID


def test_a_header_with_two_signatures_verifies_when_either_matches() -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')
    new, old = signed(payload, secret=SECRET), signed(payload, secret=OLD_SECRET)
    headers = {**new, "webhook-signature": f"{new['webhook-signature']} {old['webhook-signature']}"}

    assert verify(payload, headers, OLD_SECRET).id == MSG_ID
    assert verify(payload, headers, SECRET).id == MSG_ID


def test_a_header_whose_signatures_are_all_by_other_secrets_is_refused() -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    headers = signed(payload, secret=other)
    headers["webhook-signature"] += " " + signed(payload, secret=OLD_SECRET)["webhook-signature"]

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(payload, headers, SECRET)


def test_a_wrong_secret_is_refused() -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')

    with pytest.raises(WebhookVerificationError, match="failed verification"):
        verify(payload, signed(payload, secret=OLD_SECRET), SECRET)


@pytest.mark.parametrize("secret", ["whsec_a", "whsec_", "", "whsec_é€", [], [SECRET, "whsec_" + "Q" * 41]], ids=repr)
def test_a_malformed_or_missing_secret_is_refused(secret: str | list[str]) -> None:
    payload = body("connection.approved", CONNECTION_DATA)

    with pytest.raises(WebhookVerificationError, match="secret"):
        verify(payload, signed(payload), secret)


def test_a_malformed_secret_is_refused_without_showing_any_secret() -> None:
    payload, bad = body("connection.approved", CONNECTION_DATA), "whsec_" + "Q" * 41

    with pytest.raises(WebhookVerificationError, match="secret #2") as caught:
        verify(payload, signed(payload), [SECRET, bad])

    assert "Q" * 41 not in str(caught.value)
    assert SECRET.removeprefix("whsec_") not in str(caught.value)


# ---------------------------------------------------------------- what a signature cannot vouch for


def test_a_tampered_body_is_refused() -> None:
    data = f'{{"connection": {CONNECTION_JSON}, "percent": 50, "spentUsd": 2.5, "resetsAt": "2027-01-01T00:00:00Z"}}'
    payload = body("budget.threshold", data)
    headers = signed(payload)

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(payload.replace('"percent": 50', '"percent": 100'), headers, SECRET)


@pytest.mark.parametrize(
    ("shift", "reason"), [(timedelta(minutes=-6), "too old"), (timedelta(minutes=6), "too new")], ids=["old", "future"]
)
def test_a_timestamp_more_than_five_minutes_off_is_refused(shift: timedelta, reason: str) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')

    with pytest.raises(WebhookVerificationError, match=reason):
        verify(payload, signed(payload, at=datetime.now(UTC) + shift), SECRET)


@pytest.mark.parametrize("shift", [timedelta(minutes=-4), timedelta(minutes=4)], ids=["late", "early"])
def test_a_timestamp_within_five_minutes_verifies(shift: timedelta) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')

    assert verify(payload, signed(payload, at=datetime.now(UTC) + shift), SECRET).id == MSG_ID


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_a_missing_header_is_refused_by_name(missing: str, how: str) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')
    headers = signed(payload)
    if how == "absent":
        del headers[missing]
    else:
        headers[missing] = ""

    with pytest.raises(WebhookVerificationError, match=missing):
        verify(payload, headers, SECRET)


@pytest.mark.parametrize("signature", ["garbage", "v1", "v1,!!!", "v1,abc", "v1,a v1,b", "v1,x,y", "v2,abc"])
def test_a_malformed_signature_header_is_refused_as_a_verification_error(signature: str) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')
    headers = {**signed(payload), "webhook-signature": signature}

    with pytest.raises(WebhookVerificationError):
        verify(payload, headers, SECRET)


@pytest.mark.parametrize("timestamp", ["yesterday", "nan", "1e400", ""])
def test_a_malformed_timestamp_header_is_refused(timestamp: str) -> None:
    payload = body("connection.approved", f'{{"connection": {CONNECTION_JSON}}}')
    headers = {**signed(payload), "webhook-timestamp": timestamp}

    with pytest.raises(WebhookVerificationError):
        verify(payload, headers, SECRET)


def test_a_body_signed_under_another_id_is_refused_as_a_replay() -> None:
    payload = body("connection.revoked", f'{{"connection": {CONNECTION_JSON}}}', event_id="msg_original")

    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify(payload, signed(payload, msg_id="msg_another"), SECRET)


def test_a_payload_that_is_not_utf8_is_refused() -> None:
    payload = b'{"id": "\xff"}'
    headers = signed("ignored")

    with pytest.raises(WebhookVerificationError, match="UTF-8"):
        verify(payload, headers, SECRET)
    with pytest.raises(WebhookVerificationError, match="UTF-8"):
        verify("\ud800", headers, SECRET)


APPROVED = body("connection.approved", CONNECTION_DATA)
FRACTIONAL_COUNT = GRANT_JSON.replace('"requestsAllowed": 3', '"requestsAllowed": 3.0')
BOOLEAN_COUNT = GRANT_JSON.replace('"requestsUsed": 1', '"requestsUsed": true')


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"id": "msg_7Yk2pQx"}', "type is missing"),
        (APPROVED.replace('"id": "msg_7Yk2pQx", ', ""), "id is missing"),
        (APPROVED.replace('"type": "connection.approved", ', ""), "type is missing"),
        (APPROVED.replace('"appId": "app_1", ', ""), "appId is missing"),
        (APPROVED.replace('"mode": "test", ', ""), "mode is missing"),
        (APPROVED.replace("2026-12-05T16:00:00Z", "soon"), "timestamp is not"),
        (APPROVED.replace('"data": {', '"dat": {'), "data is missing"),
        (body("connection.approved", CONNECTION_DATA, mode="staging"), "mode 'staging'"),
        (body("connection.approved", "[]"), "data is not an object"),
        (body("connection.approved", "{}"), "data.connection is missing"),
        (body("grant.created", "{}"), "data.grant is missing"),
        (body("connection.approved", CONNECTION_DATA.replace("5.000000000000000001", "NaN")), "NaN"),
        (body("connection.approved", CONNECTION_DATA.replace("5.000000000000000001", '"5"')), "monthlyUsd is not"),
        (body("connection.approved", CONNECTION_DATA.replace("5.000000000000000001", "true")), "monthlyUsd is not"),
        (body("grant.created", f'{{"grant": {FRACTIONAL_COUNT}}}'), "requestsAllowed is not"),
        (body("grant.created", f'{{"grant": {BOOLEAN_COUNT}}}'), "requestsUsed is not"),
        (body("funding.invalid", CONNECTION_DATA), "data.reason is missing"),
        (body("connection.cap_changed", CONNECTION_DATA), "data.previousLimits is missing"),
    ],
)
def test_a_verified_payload_that_is_not_a_wattfare_event_is_refused(payload: str, reason: str) -> None:
    with pytest.raises(WebhookVerificationError, match="not a Wattfare event") as caught:
        verify(payload, signed(payload), SECRET)

    assert reason in str(caught.value)


# ---------------------------------------------------------------- the error and the values


def test_the_verification_error_is_a_wattfare_error_but_no_api_error_and_pickles() -> None:
    payload = body("connection.approved", CONNECTION_DATA)
    with pytest.raises(WebhookVerificationError) as caught:
        verify(payload, signed(payload, secret=OLD_SECRET), SECRET)
    exc = caught.value

    assert isinstance(exc, wattfare.WattfareError)
    assert not isinstance(exc, wattfare.APIError)
    assert not hasattr(exc, "status_code")
    assert wattfare.WebhookVerificationError is WebhookVerificationError
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), str(copy)) == (WebhookVerificationError, str(exc))


def test_events_are_frozen_and_a_retried_delivery_dedupes_in_a_set() -> None:
    payload = body("connection.approved", CONNECTION_DATA)
    first = verify(payload, signed(payload), SECRET)
    retry = verify(payload.encode(), signed(payload, at=datetime.now(UTC) - timedelta(seconds=30)), SECRET)

    assert len({first, retry}) == 1
    with pytest.raises(AttributeError):
        first.id = "msg_other"  # pyright: ignore[reportAttributeAccessIssue]
