"""Password hashing (argon2id), verification that hides which usernames exist, and the policy.

Hashing and verifying cost tens of milliseconds of CPU each, so the async functions run
them in a worker thread (argon2-cffi releases the GIL) instead of stalling the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from enum import StrEnum
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MEMORY_COST_KIB",
    "MIN_PASSWORD_LENGTH",
    "PARALLELISM",
    "TIME_COST",
    "PasswordProblem",
    "check_password_policy",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

# OWASP's first argon2id configuration (m=19 MiB, t=2, p=1): ~50 ms on this project's
# 2-vCPU machines. RFC 9106's 64 MiB profile costs 250-340 ms here and 64 MiB per login
# in flight, which lets a burst of logins exhaust memory; `needs_rehash` lets a later
# increase upgrade stored hashes at each user's next login.
TIME_COST: Final = 2
MEMORY_COST_KIB: Final = 19 * 1024
PARALLELISM: Final = 1
HASH_LENGTH: Final = 32
SALT_LENGTH: Final = 16

MIN_PASSWORD_LENGTH: Final = 12
# Long enough for any passphrase, short enough that nobody makes us hash megabytes.
MAX_PASSWORD_LENGTH: Final = 1024

# Passwords long enough to pass the length rule that still top every breach list.
_COMMON_PASSWORDS: Final = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "1q2w3e4r5t6y",
        "aaaaaaaaaaaa",
        "abc123456789",
        "administrator",
        "changeme1234",
        "iloveyou1234",
        "letmein12345",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "qwerty123456",
        "qwertyuiop123",
        "qwertyuiopasdf",
        "welcome12345",
        "correcthorsebatterystaple",
    }
)

_hasher: Final = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_LENGTH,
    salt_len=SALT_LENGTH,
    type=Type.ID,
)


class PasswordProblem(StrEnum):
    """Why the policy refuses a password (stable codes, shown to the user)."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    SAME_AS_USERNAME = "same_as_username"
    TOO_COMMON = "too_common"


async def hash_password(password: str) -> str:
    """Return the argon2id hash (PHC string, salt included) of ``password``."""
    return await asyncio.to_thread(_hasher.hash, _encoded(password))


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Tell whether ``password`` matches; ``None`` (unknown user) costs the same and is False."""
    return await asyncio.to_thread(_verify, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    """Tell whether a hash was made with other parameters (or is unreadable): hash anew."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def check_password_policy(password: str, *, username: str | None = None) -> list[PasswordProblem]:
    """Return every reason the policy refuses ``password``; empty when it is acceptable."""
    problems: list[PasswordProblem] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(PasswordProblem.TOO_SHORT)
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(PasswordProblem.TOO_LONG)
    folded = password.casefold()
    if username is not None and folded == username.casefold():
        problems.append(PasswordProblem.SAME_AS_USERNAME)
    if folded in _COMMON_PASSWORDS:
        problems.append(PasswordProblem.TOO_COMMON)
    return problems


def _encoded(password: str) -> bytes:
    # JSON can carry lone surrogates ("\ud800"); they must hash, not crash the request.
    return password.encode("utf-8", "surrogatepass")


def _verify(stored_hash: str | None, password: str) -> bool:
    secret = _encoded(password)
    if stored_hash is None:
        _verify_dummy(secret)
        return False
    try:
        return _hasher.verify(stored_hash, secret)
    except VerificationError:
        return False
    except (InvalidHashError, ValueError):
        # A stored hash we cannot read must not answer faster than a real check either.
        _verify_dummy(secret)
        return False


def _verify_dummy(secret: bytes) -> None:
    """Spend exactly the time of a real verification, so unknown usernames are not revealed."""
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy_hash(), secret)


@functools.cache
def _dummy_hash() -> str:
    # A hash of a random secret nobody knows, made once with the current parameters.
    return _hasher.hash(secrets.token_urlsafe(32))
