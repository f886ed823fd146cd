"""Session tokens: short-lived HS256 JWTs bound to one app and one app user id.

An app's server mints one per browser session (`POST /sessions`); the browser uses it to open the
consent popup and to read or revoke its own connection. Hand-rolled on `hmac` because the format is
tiny and a dependency would be more code to trust than these forty lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from wattfare.server.store.records import Mode

AUDIENCE = "wattfare:session"
SESSION_TTL = timedelta(minutes=10)
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or meant for something else."""


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a session token vouches for."""

    app_id: str
    app_user_id: str
    mode: Mode
    monthly_cap: int | None
    expires_at: int
    token_id: str


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def mint_session(secret: bytes, claims: SessionClaims) -> str:
    """Sign a session token."""
    payload = {
        "aud": AUDIENCE,
        "app": claims.app_id,
        "sub": claims.app_user_id,
        "mode": claims.mode,
        "cap": claims.monthly_cap,
        "exp": claims.expires_at,
        "jti": claims.token_id,
    }
    signing_input = _HEADER + b"." + _b64(orjson.dumps(payload))
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode()


def new_claims(app_id: str, app_user_id: str, mode: Mode, monthly_cap: int | None, now: datetime) -> SessionClaims:
    """Claims for a token minted now."""
    return SessionClaims(
        app_id, app_user_id, mode, monthly_cap, int((now + SESSION_TTL).timestamp()), secrets.token_urlsafe(12)
    )


def verify_session(secret: bytes, token: str, now: datetime) -> SessionClaims:
    """Check signature, audience and expiry; return the claims or raise `InvalidTokenError`."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 4096:
        raise InvalidTokenError("malformed session token")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    try:
        header: Any = orjson.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
        payload: Any = orjson.loads(_unb64(parts[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidTokenError("malformed session token") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":  # pyright: ignore[reportUnknownMemberType]
        raise InvalidTokenError("unsupported token algorithm")
    expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidTokenError("bad token signature")
    if not isinstance(payload, dict) or payload.get("aud") != AUDIENCE:  # pyright: ignore[reportUnknownMemberType]
        raise InvalidTokenError("token is not a session token")
    claims: dict[str, Any] = payload  # pyright: ignore[reportUnknownVariableType]
    try:
        parsed = SessionClaims(
            app_id=str(claims["app"]),
            app_user_id=str(claims["sub"]),
            mode="live" if claims["mode"] == "live" else "test",
            monthly_cap=None if claims.get("cap") is None else int(claims["cap"]),
            expires_at=int(claims["exp"]),
            token_id=str(claims["jti"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidTokenError("malformed session token") from exc
    if parsed.expires_at <= now.timestamp():
        raise InvalidTokenError("session token expired")
    return parsed
