"""The SDK clients: `Wattfare` and `AsyncWattfare`, twins over the I/O-free `_core`."""

from __future__ import annotations

from wattfare._client._async import (
    AsyncChatStream,
    AsyncModelHandle,
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
)
from wattfare._client._sync import ChatStream, ModelHandle, Wattfare, WattfareGrant, WattfareUser

__all__ = [
    "AsyncChatStream",
    "AsyncModelHandle",
    "AsyncWattfare",
    "AsyncWattfareGrant",
    "AsyncWattfareUser",
    "ChatStream",
    "ModelHandle",
    "Wattfare",
    "WattfareGrant",
    "WattfareUser",
]
