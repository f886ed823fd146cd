"""Member passwords: argon2id (memory-hard), hashed and checked off the event loop.

Parameters are OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane): about 50 ms here, so a sign-in
does not stall the server, while each guess still costs an attacker 19 MiB of memory. Hashes carry their
parameters, so raising them later re-hashes members as they sign in (`needs_rehash`).
"""

from __future__ import annotations

import functools

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    # Checked when the email is unknown, so an unknown email takes as long as a wrong password.
    return _hasher.hash("wattfare-dummy-password")


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    return None


async def hash_password(password: str) -> str:
    """The argon2id hash of a password (computed in a worker thread)."""
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; a None hash (unknown member) is checked against a dummy, and fails."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)
