"""Who may call what: secret keys, session tokens, and the wall between apps."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from tests.server.api.envelope import assert_error
from tests.server.api.tables import row_counts
from tests.support.wattfare_server import InProcess, in_process, provision
from wattfare.server.access.session_tokens import SessionClaims, mint_session

pytestmark = pytest.mark.anyio

HELLO = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
SIGNING_SECRET = "known-signing-secret-for-these-tests"
NONE_HEADER = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()

# Every endpoint that takes a secret key: (method, path, JSON body).
SECRET_KEY_ENDPOINTS: list[tuple[str, str, object]] = [
    ("POST", "/sessions", {"appUserId": "u1", "requestLimit": {"monthlyUsd": 1}}),
    ("GET", "/status?appUserId=u1", None),
    ("DELETE", "/connections/u1", None),
    ("POST", "/chat/completions", HELLO),
    ("GET", "/models", None),
    ("GET", "/usage", None),
]
SESSION_TOKEN_ENDPOINTS: list[tuple[str, str, object]] = [
    ("GET", "/connections", None),
    ("POST", "/connections", {"monthlyUsd": 1}),
    ("DELETE", "/connections", None),
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: bytes, payload: object, header: dict[str, object] | None = None) -> str:
    """An HS256 JWT signed here, independently of the server's token code."""
    signing_input = (
        f"{b64(json.dumps(header or {'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(app_id: str, user: str = "u1", *, expires_in: int = 600, mode: str = "test") -> dict[str, object]:
    return {
        "aud": "wattfare:session",
        "app": app_id,
        "sub": user,
        "mode": mode,
        "cap": None,
        "exp": int(time.time()) + expires_in,
        "jti": "t1",
    }


async def call(wf: InProcess, method: str, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
    return await wf.client.request(method, path, json=body, headers=headers)


async def every_endpoint_refuses(
    wf: InProcess, endpoints: list[tuple[str, str, object]], headers: dict[str, str]
) -> None:
    for method, path, body in endpoints:
        response = await call(wf, method, path, body, headers)
        assert_error(response, 401, "auth", None)


def nothing_written(db: Path) -> bool:
    counts = row_counts(db, ("ledger", "holds", "counters", "connections", "requested_caps"))
    return not any(counts.values())


# -- secret keys


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Bearer garbage",
        "Bearer sk_test_",
        "Bearer sk_live_app_nope_0123456789abcdef0123456789abcdef0123456789a",
        "Bearer sk_test_app_nope_0123456789abcdef0123456789abcdef0123456789a",
        "Bearer Bearer sk_test_x",
    ],
)
async def test_a_missing_or_garbled_secret_key_is_refused_everywhere(tmp_path: Path, authorization: str | None) -> None:
    async with in_process(tmp_path) as wf:
        headers = {"Wattfare-User": "u1"}
        if authorization is not None:
            headers["Authorization"] = authorization
        await every_endpoint_refuses(wf, SECRET_KEY_ENDPOINTS, headers)
        assert nothing_written(tmp_path / "wattfare.db")


@pytest.mark.parametrize("mangle", ["truncated", "extended", "uppercased", "other_mode", "swapped_app"])
async def test_a_near_miss_of_a_real_secret_key_is_refused_everywhere(tmp_path: Path, mangle: str) -> None:
    async with in_process(tmp_path) as wf:
        secret = wf.secret
        app_id = wf.app.app.id
        near_miss = {
            "truncated": secret[:-1],
            "extended": secret + "x",
            "uppercased": secret.upper(),
            "other_mode": secret.replace("sk_test_", "sk_live_", 1),
            "swapped_app": secret.replace(app_id, "app_someoneElse0", 1),
        }[mangle]
        assert near_miss != secret
        await every_endpoint_refuses(wf, SECRET_KEY_ENDPOINTS, wf.auth(near_miss))
        assert nothing_written(tmp_path / "wattfare.db")
        # The real key still works, so the refusals above are about the key, not the request.
        assert (await wf.client.get("/models", headers=wf.auth())).status_code == 200


async def test_a_revoked_secret_key_is_refused_everywhere(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        db = sqlite3.connect(tmp_path / "wattfare.db")
        with db:
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE app_id = ? AND kind = 'secret' AND mode = 'test'",
                (datetime.now(UTC).isoformat(), wf.app.app.id),
            )
        db.close()
        await every_endpoint_refuses(wf, SECRET_KEY_ENDPOINTS, wf.auth())
        assert nothing_written(tmp_path / "wattfare.db")
        # The app's live key was not revoked and still works.
        live = await wf.client.get("/models", headers=wf.auth(wf.app.secret_keys["live"]))
        assert live.status_code == 200


@pytest.mark.parametrize("mode", ["test", "live"])
async def test_a_publishable_key_cannot_be_used_as_a_secret_key(tmp_path: Path, mode: str) -> None:
    async with in_process(tmp_path) as wf:
        publishable = wf.app.publishable_keys[mode]  # type: ignore[index]
        assert publishable.startswith(f"pk_{mode}_")
        for method, path, body in SECRET_KEY_ENDPOINTS:
            response = await call(wf, method, path, body, wf.auth(publishable))
            error = assert_error(response, 401, "auth", None)
            assert "publishable" in str(error["message"]).lower()
        assert nothing_written(tmp_path / "wattfare.db")


async def test_a_session_token_cannot_be_used_as_a_secret_key(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        session = await wf.client.post("/sessions", json={"appUserId": "u1"}, headers=wf.auth())
        token = session.json()["token"]
        await every_endpoint_refuses(wf, SECRET_KEY_ENDPOINTS, wf.auth(token))
        assert nothing_written(tmp_path / "wattfare.db")


async def test_refusals_never_echo_the_credential(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        guess = wf.secret[:-4] + "zzzz"
        for method, path, body in SECRET_KEY_ENDPOINTS:
            response = await call(wf, method, path, body, wf.auth(guess))
            assert response.status_code == 401
            assert guess not in response.text
            assert guess[8:] not in response.text


# -- session tokens


async def test_a_secret_or_publishable_key_cannot_be_used_as_a_session_token(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        for credential in (wf.secret, wf.app.secret_keys["live"], wf.app.publishable_keys["test"]):
            await every_endpoint_refuses(wf, SESSION_TOKEN_ENDPOINTS, {"Authorization": f"Bearer {credential}"})
        await every_endpoint_refuses(wf, SESSION_TOKEN_ENDPOINTS, {})
        assert nothing_written(tmp_path / "wattfare.db")


async def test_a_token_signed_with_the_servers_secret_is_accepted(tmp_path: Path) -> None:
    # The control for the forgeries below: the same construction with the right secret works.
    async with in_process(tmp_path, signing_secret=SIGNING_SECRET) as wf:
        token = jwt(SIGNING_SECRET.encode(), claims(wf.app.app.id))
        response = await wf.client.post("/connections", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.json()["connected"] is True


@pytest.mark.parametrize(
    "forgery",
    [
        "bad_signature",
        "other_servers_secret",
        "alg_none",
        "alg_none_with_signature",
        "alg_hs512",
        "changed_user",
        "changed_app",
        "changed_mode",
        "changed_expiry",
        "expired",
        "expired_by_a_second",
        "wrong_audience",
        "no_audience",
        "missing_app",
        "two_parts",
        "four_parts",
        "not_base64",
        "payload_not_json",
        "payload_a_list",
        "oversized",
    ],
)
async def test_a_forged_expired_or_malformed_session_token_is_refused(tmp_path: Path, forgery: str) -> None:
    async with in_process(tmp_path, signing_secret=SIGNING_SECRET) as wf:
        secret = SIGNING_SECRET.encode()
        app_id = wf.app.app.id
        good = jwt(secret, claims(app_id, "alice"))
        head, body, signature = good.split(".")

        def resigned_payload(**changes: object) -> str:
            # A changed payload that keeps the original signature.
            return f"{head}.{b64(json.dumps(claims(app_id, 'alice') | changes).encode())}.{signature}"

        token = {
            "bad_signature": f"{head}.{body}.{b64(bytes(32))}",
            "other_servers_secret": jwt(b"another-wattfare-servers-secret", claims(app_id, "alice")),
            "alg_none": f"{NONE_HEADER}.{body}.",
            "alg_none_with_signature": f"{NONE_HEADER}.{body}.{signature}",
            "alg_hs512": jwt(secret, claims(app_id, "alice"), {"alg": "HS512", "typ": "JWT"}),
            "changed_user": resigned_payload(sub="mallory"),
            "changed_app": resigned_payload(app="app_someoneElse0"),
            "changed_mode": resigned_payload(mode="live"),
            "changed_expiry": resigned_payload(exp=int(time.time()) + 86_400),
            "expired": jwt(secret, claims(app_id, "alice", expires_in=-3600)),
            "expired_by_a_second": mint_session(
                secret, SessionClaims(app_id, "alice", "test", None, int(time.time()) - 1, "t2")
            ),
            "wrong_audience": jwt(secret, claims(app_id, "alice") | {"aud": "wattfare:something-else"}),
            "no_audience": jwt(secret, {k: v for k, v in claims(app_id, "alice").items() if k != "aud"}),
            "missing_app": jwt(secret, {k: v for k, v in claims(app_id, "alice").items() if k != "app"}),
            "two_parts": f"{head}.{body}",
            "four_parts": f"{good}.{signature}",
            "not_base64": f"{head}.%%%%.{signature}",
            "payload_not_json": f"{head}.{b64(b'not json')}.{signature}",
            "payload_a_list": jwt(secret, ["alice"]),
            "oversized": jwt(secret, claims(app_id, "alice") | {"pad": "x" * 5000}),
        }[forgery]
        headers = {"Authorization": f"Bearer {token}"}
        for method, path, payload in SESSION_TOKEN_ENDPOINTS:
            response = await call(wf, method, path, payload, headers)
            assert_error(response, 401, "auth", None)
        assert nothing_written(tmp_path / "wattfare.db")
        # Nobody was connected by the attempts, under any of the names a forgery tried.
        for user in ("alice", "mallory"):
            assert (await wf.client.get("/status", params={"appUserId": user}, headers=wf.auth())).json()[
                "connected"
            ] is False


async def test_a_token_from_before_the_signing_secret_changed_is_refused(tmp_path: Path) -> None:
    async with in_process(tmp_path, signing_secret="first-secret") as wf:
        session = await wf.client.post("/sessions", json={"appUserId": "alice"}, headers=wf.auth())
        token = session.json()["token"]
        assert (await wf.client.get("/connections", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    async with in_process(tmp_path / "later", signing_secret="second-secret") as later:
        assert_error(await later.client.get("/connections", headers={"Authorization": f"Bearer {token}"}), 401, "auth")


# -- isolation between apps


async def test_one_apps_key_cannot_see_revoke_or_spend_another_apps_users(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        other = await anyio.to_thread.run_sync(provision, tmp_path / "wattfare.db", "Other app")
        b_key = other.secret_keys["test"]

        async def status(key: str, user: str) -> dict[str, object]:
            response = await wf.client.get("/status", params={"appUserId": user}, headers=wf.auth(key))
            assert response.status_code == 200, response.text
            return response.json()

        served = await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(b_key, user="bob"))
        assert served.status_code == 200, served.text
        b_before = await status(b_key, "bob")
        assert b_before["connected"] is True

        # A cannot read B's user.
        assert (await status(wf.secret, "bob"))["connected"] is False
        # A cannot revoke B's user.
        assert (await wf.client.delete("/connections/bob", headers=wf.auth())).status_code == 204
        assert await status(b_key, "bob") == b_before
        # A's usage never lists B's rows, whatever filter it uses.
        for params in ({}, {"appUserId": "bob"}):
            usage = await wf.client.get("/usage", params=params, headers=wf.auth())
            assert usage.status_code == 200
            assert usage.json()["data"] == []
        # A's "bob" is A's own user: spending as him does not touch B's budget.
        token = (await wf.client.post("/sessions", json={"appUserId": "bob"}, headers=wf.auth())).json()["token"]
        approved = await wf.client.post(
            "/connections", json={"monthlyUsd": 1}, headers={"Authorization": f"Bearer {token}"}
        )
        assert approved.json()["limits"]["monthlyUsd"] == 1
        spent = await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(user="bob"))
        assert spent.status_code == 200
        assert await status(b_key, "bob") == b_before
        a_status = await status(wf.secret, "bob")
        assert Decimal(str(a_status["spentUsd"])) == Decimal(spent.headers["Wattfare-Cost-Usd"])
        # And B's usage shows only B's request.
        b_usage = (await wf.client.get("/usage", headers=wf.auth(b_key))).json()["data"]
        assert [(row["appUserId"], row["requests"]) for row in b_usage] == [("bob", 1)]


async def test_one_apps_session_token_revokes_only_its_own_user(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        other = await anyio.to_thread.run_sync(provision, tmp_path / "wattfare.db", "Other app")
        b_key = other.secret_keys["test"]
        assert (
            await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(b_key, user="bob"))
        ).status_code == 200
        token = (await wf.client.post("/sessions", json={"appUserId": "bob"}, headers=wf.auth())).json()["token"]
        assert (await wf.client.delete("/connections", headers={"Authorization": f"Bearer {token}"})).status_code == 204
        b_status = await wf.client.get("/status", params={"appUserId": "bob"}, headers=wf.auth(b_key))
        assert b_status.json()["connected"] is True
        assert (
            await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(b_key, user="bob"))
        ).status_code == 200
