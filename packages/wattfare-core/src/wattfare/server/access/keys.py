"""API keys: minted once, shown once, stored as hashes.

Secret keys look like `sk_test_<appId>_<secret>` (wattfare.com's documented shape: the app id is
embedded, so a leaked key says whose it is). The secret part carries 256 random bits, so a plain
SHA-256 is a sound at-rest hash: there is nothing to brute-force (memory-hard hashes are for passwords).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from wattfare.server.store.records import Mode

KeyKind = Literal["secret", "publishable"]
_PREFIX: dict[KeyKind, str] = {"secret": "sk", "publishable": "pk"}


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A freshly minted key: `plaintext` exists only in this value, never in the database."""

    key_id: str
    plaintext: str
    key_hash: str
    hint: str


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as `app_3kq…`."""
    return f"{prefix}_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"


def new_request_id() -> str:
    """A request's id, `req_` + the microsecond it was made (hex) + 48 random bits.

    Time-ordered so the ledger's and the holds' indexes grow at their right edge: concurrent requests then
    dirty the same few index pages, which a grouped commit writes once, instead of one random page each.
    """
    return f"req_{time.time_ns() // 1000:013x}{secrets.token_hex(6)}"


def hash_key(plaintext: str) -> str:
    """The at-rest form of a key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def mint_key(app_id: str, mode: Mode, kind: KeyKind) -> MintedKey:
    """Mint a key of `kind` for an app in `mode`."""
    plaintext = f"{_PREFIX[kind]}_{mode}_{app_id}_{secrets.token_urlsafe(32)}"
    return MintedKey(new_id("key"), plaintext, hash_key(plaintext), f"{plaintext[:12]}…{plaintext[-4:]}")


def key_mode(plaintext: str) -> Mode | None:
    """`test` or `live` from a key's prefix, or None when it is not a Wattfare secret key."""
    if plaintext.startswith("sk_test_"):
        return "test"
    if plaintext.startswith("sk_live_"):
        return "live"
    return None
