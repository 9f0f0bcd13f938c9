"""Sessions on the processor: first login, refresh rotation, reuse, logout, limits, audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authkit.tokens import AccessTokenIssuer
from response_processor.runtime import Runtime
from tests.response_processor.conftest import (
    ADMIN_PASSWORD,
    NEW_ADMIN_PASSWORD,
    USER_PASSWORD,
    Client,
    MakeMember,
    bearer,
    login,
)


async def refresh(client: Client, token: str) -> Any:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_the_bootstrap_admin_must_change_its_password_first(client: Client) -> None:
    tokens = await login(client, "admin", ADMIN_PASSWORD)
    blocked = await client.get("/api/v1/users", headers=bearer(tokens))
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "password_change_required"
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.status_code == 403  # every route but the password change
    weak = await client.post(
        "/api/v1/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "short"},
        headers=bearer(tokens),
    )
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "weak_password"
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": NEW_ADMIN_PASSWORD},
        headers=bearer(tokens),
    )
    assert changed.status_code == 204
    # The old session ended with the change; the new password works.
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 401
    fresh = await login(client, "admin", NEW_ADMIN_PASSWORD)
    assert (await client.get("/api/v1/users", headers=bearer(fresh))).status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: Client, admin: dict[str, str]
) -> None:
    tokens = await login(client, "admin", NEW_ADMIN_PASSWORD)
    first = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["token_type"] == "bearer"
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    # The whole family is gone: the token handed out by the rotation is dead too.
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert after.status_code == 401


async def test_logout_ends_the_refresh_family(client: Client, admin: dict[str, str]) -> None:
    tokens = await login(client, "admin", NEW_ADMIN_PASSWORD)
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


async def test_wrong_password_is_refused_audited_and_limited(
    client: Client, admin: dict[str, str]
) -> None:
    for _ in range(5):
        bad = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": "not it at all"}
        )
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "invalid_credentials"
    limited = await client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": NEW_ADMIN_PASSWORD}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    audit = await client.get("/api/v1/audit?action=login_failed", headers=admin)
    assert len(audit.json()["items"]) >= 5
    assert all(entry["actor"] == "admin" for entry in audit.json()["items"])


async def test_guessing_the_current_password_of_a_password_change_is_a_limited_login_attempt(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    statuses = []
    for _ in range(6):
        guess = await client.post(
            "/api/v1/auth/password",
            json={"current_password": "a guess at it 123", "new_password": "brand new pass 12345"},
            headers=member.headers,
        )
        statuses.append((guess.status_code, guess.json()["error"]["code"]))
    assert statuses[:5] == [(401, "invalid_credentials")] * 5
    assert statuses[5] == (429, "too_many_login_attempts")
    # The same window as the login's: the right password is refused there too, for now.
    login_now = await client.post(
        "/api/v1/auth/login", json={"username": member.username, "password": USER_PASSWORD}
    )
    assert login_now.status_code == 429


async def test_a_right_current_password_clears_the_failures_like_a_login(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    for _ in range(4):
        await client.post(
            "/api/v1/auth/login", json={"username": member.username, "password": "no no no no 1"}
        )
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": USER_PASSWORD, "new_password": "brand new pass 12345"},
        headers=member.headers,
    )
    assert changed.status_code == 204, changed.text
    for _ in range(4):
        await client.post(
            "/api/v1/auth/login", json={"username": member.username, "password": "no no no no 1"}
        )
    await login(client, member.username, "brand new pass 12345")


async def test_an_admins_password_reset_ends_the_users_refresh_tokens(
    client: Client, admin: dict[str, str], make_member: MakeMember
) -> None:
    member = await make_member()
    tokens = await login(client, member.username, USER_PASSWORD)
    reset = await client.patch(
        f"/api/v1/users/{member.id}", json={"password": "reset by admin 12345"}, headers=admin
    )
    assert reset.status_code == 200, reset.text
    refused = await refresh(client, tokens["refresh_token"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "token_invalid")


async def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"username": "nobody-here", "password": "whatever it is"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_tokens_for_another_audience_or_expired_are_refused(
    client: Client, runtime: Runtime, admin: dict[str, str]
) -> None:
    me = (await client.get("/api/v1/me", headers=admin)).json()
    settings = runtime.settings

    def token(**overrides: object) -> dict[str, str]:
        options: dict[str, object] = {
            "issuer": settings.jwt_issuer,
            "audience": settings.jwt_audience,
            **overrides,
        }
        issuer = AccessTokenIssuer(settings.jwt_secret, **options)  # type: ignore[arg-type]
        issued = issuer.issue(me["id"], roles=["admin"], session_version=me["session_version"])
        return {"Authorization": f"Bearer {issued.token}"}

    assert (await client.get("/api/v1/me", headers=token())).status_code == 200
    wrong_audience = await client.get("/api/v1/me", headers=token(audience="request-gateway"))
    assert wrong_audience.status_code == 401
    expired = await client.get(
        "/api/v1/me", headers=token(clock=lambda: 1_000_000_000.0, lifetime=timedelta(minutes=1))
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + admin["Authorization"].split(".")[1] + "."
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {unsigned}"})
    ).status_code == 401


async def test_a_deactivated_user_is_locked_out_at_once(
    client: Client, admin: dict[str, str], make_member: MakeMember
) -> None:
    member = await make_member()
    assert (await client.get("/api/v1/me", headers=member.headers)).status_code == 200
    off = await client.patch(f"/api/v1/users/{member.id}", json={"active": False}, headers=admin)
    assert off.status_code == 200
    locked = await client.get("/api/v1/me", headers=member.headers)
    assert locked.status_code in (401, 403), locked.text
    assert locked.json()["error"]["code"] in ("token_invalid", "account_inactive")
