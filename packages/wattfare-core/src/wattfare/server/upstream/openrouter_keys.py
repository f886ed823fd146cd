"""OpenRouter's key management API, as the provider ceiling uses it: one key per member, with a monthly limit.

Authenticated with the operator's management key (`WATTFARE_OPENROUTER_MANAGEMENT_KEY`), which can make and
manage keys but never call a model. The wire (OpenRouter's docs, "Management API Keys"):

    POST   /api/v1/keys          {name, limit, limit_reset}  -> 201 {data: {hash, limit, usage_monthly, …}, key}
    PATCH  /api/v1/keys/{hash}   {limit?, disabled?}         -> 200 {data: {…}}
    GET    /api/v1/keys/{hash}                               -> 200 {data: {usage, usage_monthly, limit,
                                                                         limit_remaining, disabled, …}}
    DELETE /api/v1/keys/{hash}                               -> 200 {deleted: true}

Limits are USD as JSON numbers; Wattfare sends and reads nano-USD through `wattfare.metering`'s conversions.
A key's text comes back once, at creation: the caller seals it at once and never logs it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from wattfare.metering import nanos_to_json_number, usd_to_nanos
from wattfare.server.json_value import as_object

log = logging.getLogger("wattfare.openrouter_keys")

_TIMEOUT_SECONDS = 15.0
_MAX_KEY_LENGTH = 512
# A key's hash goes into URL paths: only what OpenRouter's hex hashes (and the stand-in's) are made of.
_HASH = re.compile(r"[A-Za-z0-9_-]{1,128}")


class KeyManagementError(Exception):
    """The provider's key management API failed or answered something unreadable (never carries a key)."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just made: its provider id (`hash`) and its text, which is never shown again."""

    hash: str
    key: str


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the provider says of one key: its limit, this month's usage and whether it is disabled (nano-USD)."""

    hash: str
    limit: int | None
    usage_monthly: int
    disabled: bool


def _nanos(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return usd_to_nanos(Decimal(repr(value)))
    except (ValueError, InvalidOperation):
        return None


def _state(data: dict[str, Any]) -> KeyState:
    hash_ = data.get("hash")
    if not isinstance(hash_, str) or _HASH.fullmatch(hash_) is None:
        raise KeyManagementError("the provider's answer names no key hash")
    usage = _nanos(data.get("usage_monthly"))
    return KeyState(hash_, _nanos(data.get("limit")), usage or 0, data.get("disabled") is True)


class OpenRouterKeys:
    """The management API at `<openrouter_url>/api/v1/keys`, with the operator's management key."""

    def __init__(self, openrouter_url: str, management_key: str, *, transport: httpx.AsyncBaseTransport | None = None):
        """Manage keys at `openrouter_url` (the stand-in's root in tests) with `management_key`."""
        self._client = httpx.AsyncClient(
            base_url=f"{openrouter_url.rstrip('/')}/api/v1",
            headers={"Authorization": f"Bearer {management_key}"},
            timeout=_TIMEOUT_SECONDS,
            transport=transport,
        )

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            answer = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise KeyManagementError(f"{method} {path}: {type(exc).__name__}") from None
        if answer.status_code not in (200, 201):
            raise KeyManagementError(f"{method} {path}: the provider answered {answer.status_code}")
        try:
            parsed = as_object(answer.json())
        except ValueError:
            parsed = None
        if parsed is None:
            raise KeyManagementError(f"{method} {path}: the provider's answer is not a JSON object")
        return parsed

    async def create(self, name: str, limit: int) -> CreatedKey:
        """Make a key with a monthly `limit` (nano-USD), reset at 00:00 UTC on the 1st."""
        body = {"name": name, "limit": nanos_to_json_number(limit), "limit_reset": "monthly"}
        answer = await self._call("POST", "/keys", body)
        key = answer.get("key")
        data = as_object(answer.get("data")) or {}
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LENGTH or not key.isprintable():
            raise KeyManagementError("the provider's answer carries no usable key")
        return CreatedKey(_state(data).hash, key)

    async def update(self, key_hash: str, *, limit: int, disabled: bool) -> KeyState:
        """Set a key's monthly limit (nano-USD) and whether it is disabled: the same call twice changes nothing."""
        body = {"limit": nanos_to_json_number(limit), "disabled": disabled}
        answer = await self._call("PATCH", f"/keys/{key_hash}", body)
        return _state(as_object(answer.get("data")) or {})

    async def state(self, key_hash: str) -> KeyState:
        """A key's limit, this month's usage and state."""
        answer = await self._call("GET", f"/keys/{key_hash}")
        return _state(as_object(answer.get("data")) or {})

    async def delete(self, key_hash: str) -> None:
        """Delete a key (one made in a race another process won)."""
        await self._call("DELETE", f"/keys/{key_hash}")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
