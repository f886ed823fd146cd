"""Members' provider keys at rest: AES-256-GCM, bound to their member so a ciphertext cannot be moved to another.

The key comes from `WATTFARE_ENCRYPTION_KEY` (base64url of 32 random bytes). Without it, one is generated and
kept in the database next to the data, which protects nothing against a stolen database: fine for `wattfare
dev`, never for production.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wattfare.server.store.protocols import ServerSecrets

_VERSION = "v1"
_NONCE_BYTES = 12


class VaultError(Exception):
    """A ciphertext is not ours (tampered, moved to another member, or made under another key)."""


def new_vault_key() -> str:
    """A fresh key in the form `WATTFARE_ENCRYPTION_KEY` takes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("WATTFARE_ENCRYPTION_KEY must be base64url of 32 bytes") from exc
    if len(key) != 32:
        raise ValueError("WATTFARE_ENCRYPTION_KEY must be base64url of 32 bytes")
    return key


class KeyVault:
    """Encrypts and decrypts provider keys; unusable until `load` is given the key (at server start)."""

    def __init__(self) -> None:
        """An empty vault."""
        self._aead: AESGCM | None = None

    def load(self, key_text: str) -> None:
        """Use this key (base64url of 32 bytes)."""
        self._aead = AESGCM(_decode_key(key_text))

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise RuntimeError("the key vault is used before the server started")
        return self._aead

    def seal(self, plaintext: str, member_id: str) -> str:
        """Encrypt a provider key for one member."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, plaintext.encode(), member_id.encode())
        return f"{_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, ciphertext: str, member_id: str) -> str:
        """Decrypt a provider key sealed for this member; raise `VaultError` otherwise."""
        version, _, body = ciphertext.partition(":")
        if version != _VERSION:
            raise VaultError("unknown ciphertext version")
        try:
            raw = base64.urlsafe_b64decode(body)
            return self._cipher().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], member_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise VaultError("the provider key cannot be decrypted with this server's key") from exc


async def vault_key(secrets_store: ServerSecrets, configured_key: str | None) -> str:
    """The operator's key (`WATTFARE_ENCRYPTION_KEY`), else the one generated once and kept in the database."""
    return configured_key or await secrets_store.put_secret_if_absent("provider_key_encryption_key", new_vault_key())
