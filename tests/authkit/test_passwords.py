"""Passwords: argon2id hashes, verification that never raises and hides unknown users, policy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import pytest
from argon2 import PasswordHasher

from authkit.passwords import (
    MAX_PASSWORD_LENGTH,
    MEMORY_COST_KIB,
    PARALLELISM,
    TIME_COST,
    PasswordProblem,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)

PASSWORD = "correct horse battery"


async def test_hashes_are_argon2id_with_the_named_parameters() -> None:
    stored = await hash_password(PASSWORD)
    assert stored.startswith(f"$argon2id$v=19$m={MEMORY_COST_KIB},t={TIME_COST},p={PARALLELISM}$")
    assert PASSWORD not in stored


async def test_the_same_password_hashes_differently_each_time() -> None:
    assert await hash_password(PASSWORD) != await hash_password(PASSWORD)


async def test_the_right_password_verifies_and_a_wrong_one_does_not() -> None:
    stored = await hash_password(PASSWORD)
    assert await verify_password(stored, PASSWORD) is True
    assert await verify_password(stored, PASSWORD + "!") is False
    assert await verify_password(stored, "") is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$broken",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$!!!!",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    ],
)
async def test_verification_answers_false_for_a_malformed_hash_without_raising(
    stored: str,
) -> None:
    assert await verify_password(stored, PASSWORD) is False


async def test_a_password_with_a_lone_surrogate_hashes_and_verifies() -> None:
    odd = "pass\ud800word-long-enough"
    stored = await hash_password(odd)
    assert await verify_password(stored, odd) is True
    assert await verify_password(stored, "pass-word-long-enough") is False
    assert await verify_password(None, odd) is False


async def test_an_unknown_user_is_refused() -> None:
    assert await verify_password(None, PASSWORD) is False


async def _median_seconds(check: Callable[[], Awaitable[bool]], runs: int = 5) -> float:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        await check()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


async def test_an_unknown_user_costs_as_much_as_a_wrong_password() -> None:
    stored = await hash_password(PASSWORD)
    await verify_password(None, "warm-up")  # the dummy hash is made once, on first use
    known = await _median_seconds(lambda: verify_password(stored, "wrong password"))
    unknown = await _median_seconds(lambda: verify_password(None, "wrong password"))
    malformed = await _median_seconds(lambda: verify_password("garbage", "wrong password"))
    assert 0.5 < unknown / known < 2.0
    assert 0.5 < malformed / known < 2.0


async def test_a_hash_with_the_current_parameters_needs_no_rehash() -> None:
    assert needs_rehash(await hash_password(PASSWORD)) is False


def test_a_hash_with_other_parameters_or_an_unreadable_one_needs_a_rehash() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weaker) is True
    assert needs_rehash("garbage") is True
    assert needs_rehash("") is True


async def test_a_hash_with_other_parameters_still_verifies() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    assert await verify_password(weaker, PASSWORD) is True


def test_a_long_uncommon_password_passes_the_policy() -> None:
    assert check_password_policy("violet-tractor-morning", username="alice") == []


def test_the_policy_refuses_short_passwords() -> None:
    assert check_password_policy("short-pw", username="alice") == [PasswordProblem.TOO_SHORT]
    assert check_password_policy("x" * 11) == [PasswordProblem.TOO_SHORT]
    assert check_password_policy("x" * 12) == []


def test_the_policy_refuses_absurdly_long_passwords() -> None:
    assert check_password_policy("x" * (MAX_PASSWORD_LENGTH + 1)) == [PasswordProblem.TOO_LONG]


def test_the_policy_refuses_the_username_whatever_its_case() -> None:
    problems = check_password_policy("Administrator1", username="administrator1")
    assert problems == [PasswordProblem.SAME_AS_USERNAME]


def test_the_policy_refuses_common_passwords_whatever_their_case() -> None:
    assert check_password_policy("Password1234") == [PasswordProblem.TOO_COMMON]
    assert check_password_policy("QWERTY123456") == [PasswordProblem.TOO_COMMON]


def test_the_policy_reports_every_problem() -> None:
    problems = check_password_policy("password1234", username="password1234")
    assert problems == [PasswordProblem.SAME_AS_USERNAME, PasswordProblem.TOO_COMMON]
    assert check_password_policy("bob", username="bob") == [
        PasswordProblem.TOO_SHORT,
        PasswordProblem.SAME_AS_USERNAME,
    ]
