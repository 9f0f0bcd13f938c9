"""Refresh tokens: hashed at rest, rotated once, a reused token revokes its whole family."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import timedelta
from typing import Any, TypeAlias

import asyncpg
import pytest

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.sessions import (
    FAMILY_OF_SQL,
    LOCK_SQL,
    MARK_USED_SQL,
    PURGE_SQL,
    REVOKE_FAMILY_SQL,
    REVOKE_USERS_SQL,
    RefreshTokenPolicy,
    RevokeReason,
    issue_refresh_token,
    purge_expired_refresh_tokens,
    revoke_all_for_user,
    revoke_family,
    revoke_refresh_token,
    rotate_refresh_token,
)
from servicekit.testing import explain

Conn: TypeAlias = "asyncpg.Connection[Any]"
ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
BOB = uuid.UUID("00000000-0000-4000-8000-000000000b0b")


async def _refusal(conn: Conn, token: str) -> AuthErrorCode:
    with pytest.raises(AuthError) as caught:
        await rotate_refresh_token(conn, token)
    return AuthErrorCode(caught.value.code)


async def _live_tokens(conn: Conn, family_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM auth_refresh_token WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )
    return count


async def test_an_issued_token_is_opaque_prefixed_and_stored_only_as_its_hash(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE, user_agent="curl/8", ip="192.0.2.1")
    assert re.fullmatch(r"rt_[A-Za-z0-9_-]{43}", token)
    stored = await conn.fetchrow("SELECT * FROM auth_refresh_token WHERE id = $1", record.id)
    assert stored is not None
    assert bytes(stored["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert all(token not in str(value) for value in stored.values())
    assert (record.user_id, record.user_agent, record.ip) == (ALICE, "curl/8", "192.0.2.1")
    assert record.used_at is None
    assert record.revoked_at is None


async def test_default_lifetimes_are_14_days_and_a_30_day_family(conn: Conn) -> None:
    _, record = await issue_refresh_token(conn, ALICE)
    assert record.expires_at - record.created_at == timedelta(days=14)
    assert record.family_expires_at - record.created_at == timedelta(days=30)


async def test_client_details_are_clipped(conn: Conn) -> None:
    _, record = await issue_refresh_token(conn, ALICE, user_agent="x" * 5000, ip="y" * 500)
    assert (len(record.user_agent or ""), len(record.ip or "")) == (512, 64)


async def test_rotation_returns_the_user_and_a_new_token_of_the_same_family(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    rotated = await rotate_refresh_token(conn, token)
    assert rotated.user_id == ALICE
    assert rotated.token != token
    user_id, new_token, _, _ = rotated
    assert user_id == ALICE
    families = await conn.fetch(
        "SELECT family_id, used_at FROM auth_refresh_token ORDER BY created_at, used_at NULLS LAST"
    )
    assert {row["family_id"] for row in families} == {record.family_id}
    assert [row["used_at"] is not None for row in families] == [True, False]
    assert (await rotate_refresh_token(conn, new_token)).user_id == ALICE


async def test_the_repr_of_a_rotation_hides_the_token(conn: Conn) -> None:
    token, _ = await issue_refresh_token(conn, ALICE)
    rotated = await rotate_refresh_token(conn, token)
    assert rotated.token not in repr(rotated)


async def test_reused_refresh_token_revokes_family(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    other_login, _ = await issue_refresh_token(conn, ALICE)
    successor = (await rotate_refresh_token(conn, token)).token

    assert await _refusal(conn, token) is AuthErrorCode.REFRESH_TOKEN_REUSED
    assert await _live_tokens(conn, record.family_id) == 0
    reasons = await conn.fetch(
        "SELECT DISTINCT revoked_reason FROM auth_refresh_token WHERE family_id = $1",
        record.family_id,
    )
    assert [row["revoked_reason"] for row in reasons] == [RevokeReason.REUSE]
    # The thief's (or the victim's) successor is dead too; the user's other login is not.
    assert await _refusal(conn, successor) is AuthErrorCode.TOKEN_INVALID
    assert (await rotate_refresh_token(conn, other_login)).user_id == ALICE


async def test_concurrent_refreshes_of_one_token_let_exactly_one_through(
    database_url: str,
) -> None:
    setup = await asyncpg.connect(database_url)
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        token, record = await issue_refresh_token(setup, ALICE)
        results = await asyncio.gather(
            rotate_refresh_token(first, token),
            rotate_refresh_token(second, token),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, AuthError)]
        assert len(errors) == 1
        assert errors[0].code == AuthErrorCode.REFRESH_TOKEN_REUSED
        assert await _live_tokens(setup, record.family_id) == 0
    finally:
        for connection in (setup, first, second):
            await connection.close()


async def test_a_reuse_inside_the_callers_transaction_is_kept_when_it_commits(
    conn: Conn,
) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    await rotate_refresh_token(conn, token)
    async with conn.transaction():
        with pytest.raises(AuthError):
            await rotate_refresh_token(conn, token)
    assert await _live_tokens(conn, record.family_id) == 0


async def test_an_unknown_or_malformed_token_is_invalid(conn: Conn) -> None:
    token, _ = await issue_refresh_token(conn, ALICE)
    unknown = "rt_" + ("A" * 43)
    odd = "rt_" + "\ud800" * 43
    for candidate in (unknown, "", "rt_", token + "x", token[3:], "eyJhbGciOi.x.y", odd):
        assert await _refusal(conn, candidate) is AuthErrorCode.TOKEN_INVALID


async def test_an_expired_token_is_reported_as_expired(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    await conn.execute(
        "UPDATE auth_refresh_token SET expires_at = now() - interval '1 second' WHERE id = $1",
        record.id,
    )
    assert await _refusal(conn, token) is AuthErrorCode.TOKEN_EXPIRED


async def test_rotation_never_outlives_the_family(conn: Conn) -> None:
    policy = RefreshTokenPolicy(lifetime=timedelta(days=14), family_lifetime=timedelta(hours=1))
    token, record = await issue_refresh_token(conn, ALICE, policy=policy)
    assert record.expires_at == record.family_expires_at
    await rotate_refresh_token(conn, token, policy=policy)
    row = await conn.fetchrow(
        "SELECT expires_at, family_expires_at FROM auth_refresh_token WHERE used_at IS NULL"
    )
    assert row is not None
    assert row["expires_at"] == row["family_expires_at"] == record.family_expires_at


async def test_a_family_past_its_absolute_lifetime_cannot_be_refreshed(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    await conn.execute(
        "UPDATE auth_refresh_token SET expires_at = now() - interval '1 second', "
        "family_expires_at = now() - interval '1 second' WHERE id = $1",
        record.id,
    )
    assert await _refusal(conn, token) is AuthErrorCode.TOKEN_EXPIRED


async def test_logout_revokes_the_family_of_the_token(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    successor = (await rotate_refresh_token(conn, token)).token
    assert await revoke_refresh_token(conn, successor) == ALICE
    assert await _live_tokens(conn, record.family_id) == 0
    assert await _refusal(conn, successor) is AuthErrorCode.TOKEN_INVALID


async def test_logout_with_an_unknown_token_changes_nothing(conn: Conn) -> None:
    await issue_refresh_token(conn, ALICE)
    assert await revoke_refresh_token(conn, "rt_" + "B" * 43) is None
    assert await revoke_refresh_token(conn, "garbage") is None
    assert await conn.fetchval("SELECT count(*) FROM auth_refresh_token WHERE revoked_at IS NULL")


async def test_revoke_family_reports_how_many_tokens_it_revoked(conn: Conn) -> None:
    token, record = await issue_refresh_token(conn, ALICE)
    await rotate_refresh_token(conn, token)
    assert await revoke_family(conn, record.family_id, reason=RevokeReason.PASSWORD_CHANGED) == 2
    assert await revoke_family(conn, record.family_id) == 0


async def test_revoke_all_for_user_ends_every_session_of_that_user_only(conn: Conn) -> None:
    phone, _ = await issue_refresh_token(conn, ALICE)
    laptop, _ = await issue_refresh_token(conn, ALICE)
    bobs, _ = await issue_refresh_token(conn, BOB)
    assert await revoke_all_for_user(conn, ALICE, reason=RevokeReason.DEACTIVATED) == 2
    assert await _refusal(conn, phone) is AuthErrorCode.TOKEN_INVALID
    assert await _refusal(conn, laptop) is AuthErrorCode.TOKEN_INVALID
    assert (await rotate_refresh_token(conn, bobs)).user_id == BOB


async def test_every_token_of_a_family_carries_the_session_version_of_its_login(
    conn: Conn,
) -> None:
    token, record = await issue_refresh_token(conn, ALICE, session_version=7)
    assert record.session_version == 7
    rotated = await rotate_refresh_token(conn, token)
    assert (rotated.family_id, rotated.session_version) == (record.family_id, 7)
    assert (await rotate_refresh_token(conn, rotated.token)).session_version == 7


async def test_purge_deletes_only_families_past_their_lifetime(conn: Conn) -> None:
    _, old = await issue_refresh_token(conn, ALICE)
    _, current = await issue_refresh_token(conn, ALICE)
    await conn.execute(
        "UPDATE auth_refresh_token SET expires_at = now() - interval '3 days', "
        "family_expires_at = now() - interval '2 days' WHERE id = $1",
        old.id,
    )
    assert await purge_expired_refresh_tokens(conn, older_than=timedelta(days=1)) == 1
    remaining = await conn.fetch("SELECT id FROM auth_refresh_token")
    assert [row["id"] for row in remaining] == [current.id]


def test_a_policy_with_a_lifetime_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        RefreshTokenPolicy(lifetime=timedelta(0))


@pytest.mark.parametrize(
    ("query", "args"),
    [
        (LOCK_SQL, (b"\0" * 32,)),
        (FAMILY_OF_SQL, (b"\0" * 32,)),
        (MARK_USED_SQL, (ALICE,)),
        (REVOKE_FAMILY_SQL, (ALICE, "logout")),
        (REVOKE_USERS_SQL, ([ALICE], "logout")),
        (PURGE_SQL, (timedelta(days=1),)),
    ],
)
async def test_every_query_is_served_by_an_index(
    conn: Conn, query: str, args: tuple[Any, ...]
) -> None:
    # With sequential scans priced out, the planner uses an index whenever one fits.
    await conn.execute("SET enable_seqscan = off")
    plan = await explain(conn, query, *args)
    assert "Seq Scan" not in plan
    assert "Index" in plan
