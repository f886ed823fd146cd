"""Which app is calling: the secret key on a server-to-server request, or a 401."""

from __future__ import annotations

from starlette.requests import Request

from wattfare.server.access.key_cache import KeyCache
from wattfare.server.errors import ApiError
from wattfare.server.http_input import bearer
from wattfare.server.observability.request_log import note_caller
from wattfare.server.store.records import KeyRecord


async def authenticate(keys: KeyCache, request: Request) -> KeyRecord:
    """The app behind the request's secret key, or a 401."""
    credential = bearer(request)
    record = await keys.lookup(credential)
    if record is None:
        if credential.startswith("pk_"):
            raise ApiError("auth", "A publishable key cannot call this endpoint: use a secret key (sk_…).")
        raise ApiError("auth", "Invalid or revoked secret key.")
    note_caller(record.app_id, record.mode)
    return record
