"""Logging in on the gateway with a synced user: tokens, refresh, logout, and the attacks."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from tests.request_gateway.conftest import (
    PASSWORD,
    Client,
    MakeMember,
    Sync,
    bearer,
    login,
    profile_type,
    user_record,
)


async def test_login_returns_the_designed_token_shape(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    assert set(member.tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert member.tokens["token_type"] == "bearer"
    assert member.tokens["expires_in"] == 30 * 60


async def test_me_tells_roles_profile_and_limits(client: Client, make_member: MakeMember) -> None:
    member = await make_member(profile=profile_type("analyst", rpm=60, burst=5))
    response = await client.get("/api/v1/me", headers=member.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == member.username
    assert body["roles"] == ["user"]
    assert body["profile_type"] == "analyst"
    assert body["limits"]["requests_per_minute"] == 60
    assert body["limits"]["burst"] == 5
    assert body["pending_requests"] == 0


async def test_wrong_password_and_unknown_user_are_refused_alike(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    wrong = await client.post(
        "/api/v1/auth/login", json={"username": member.username, "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"username": "nobody-here", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"] == "invalid_credentials"


async def test_inactive_user_cannot_log_in(client: Client, sync: Sync) -> None:
    record = await user_record("sleeper", active=False)
    await sync([profile_type(), record])
    response = await client.post(
        "/api/v1/auth/login", json={"username": "sleeper", "password": PASSWORD}
    )
    assert response.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    first = member.tokens["refresh_token"]
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    # The thief's reuse ended the legitimate successor too.
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401


async def test_logout_ends_the_refresh_token(client: Client, make_member: MakeMember) -> None:
    member = await make_member()
    token = member.tokens["refresh_token"]
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": token})
    assert out.status_code == 204
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert again.status_code == 401


async def test_a_refresh_token_is_not_an_access_token(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    headers = {"Authorization": f"Bearer {member.tokens['refresh_token']}"}
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


def _forged(member_id: uuid.UUID, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "airlock-request-gateway",
        "aud": "airlock-request-gateway",
        "sub": str(member_id),
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "roles": ["admin"],
        "pv": 1,
        "mcp": False,
    }
    key = changes.pop("key", "test-secret-" + "x" * 40)
    algorithm = changes.pop("algorithm", "HS256")
    claims.update(changes)
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.mark.filterwarnings("ignore:The HMAC key:UserWarning")
async def test_tokens_with_wrong_audience_issuer_key_or_expiry_are_refused(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    assert (await client.get("/api/v1/me", headers=member.headers)).status_code == 200
    forgeries = [
        _forged(member.id, aud="airlock-response-processor"),
        _forged(member.id, iss="someone-else"),
        _forged(member.id, key="a-different-secret-" + "y" * 40),
        _forged(member.id, exp=int(time.time()) - 3600),
        _forged(member.id, algorithm="HS512"),
    ]
    for token in forgeries:
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


async def test_an_unsigned_token_is_refused(client: Client, make_member: MakeMember) -> None:
    member = await make_member()
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    good = member.tokens["access_token"].split(".")
    token = f"{header}.{good[1]}."
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_a_user_who_must_change_their_password_is_held_back(
    client: Client, sync: Sync
) -> None:
    record = await user_record("newcomer", must_change_password=True)
    await sync([profile_type(), record])
    tokens = await login(client, "newcomer", PASSWORD)
    response = await client.get("/api/v1/requests", headers=bearer(tokens))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "password_change_required"


async def test_login_attempts_are_limited_per_username(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    statuses = []
    for _ in range(12):
        response = await client.post(
            "/api/v1/auth/login", json={"username": member.username, "password": "wrong-wrong"}
        )
        statuses.append(response.status_code)
    assert statuses[0] == 401
    assert statuses[-1] == 429
    limited = await client.post(
        "/api/v1/auth/login", json={"username": member.username, "password": PASSWORD}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


async def test_logins_and_failures_are_audited(
    client: Client, make_member: MakeMember, db: Any
) -> None:
    member = await make_member()
    await client.post(
        "/api/v1/auth/login", json={"username": member.username, "password": "wrong-wrong"}
    )
    actions = [
        row["action"]
        for row in await db.fetch(
            "SELECT action FROM audit_log WHERE actor = $1 ORDER BY id", member.username
        )
    ]
    assert actions == ["login", "login_failed"]


@pytest.mark.parametrize(
    "spelling",
    ["\u0130", "\u212a", "\u017f"],  # İ, the Kelvin sign, long s: lower() maps them to ASCII
)
async def test_a_username_spelled_with_a_special_case_mapping_reaches_no_account(
    client: Client, sync: Sync, spelling: str
) -> None:
    plain = {"\u0130": "i", "\u212a": "k", "\u017f": "s"}[spelling]
    await sync([profile_type(), await user_record(f"{plain}ris{plain}")])
    # Each spelling would have had its own login limit while reaching the same account.
    response = await client.post(
        "/api/v1/auth/login", json={"username": f"{spelling}ris{plain}", "password": PASSWORD}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (
        401,
        "invalid_credentials",
    )
    assert (await client.post(
        "/api/v1/auth/login", json={"username": f"{plain.upper()}RIS{plain}", "password": PASSWORD}
    )).status_code == 200  # fmt: skip
