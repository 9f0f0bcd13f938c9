"""Users: the processor is their authority. Every change is audited and synced to the gateway."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from airlink.outbox import enqueue
from airlink.records import User as UserRecord
from authkit.error_codes import weak_password
from authkit.passwords import check_password_policy, hash_password
from authkit.sessions import RevokeReason, revoke_all_for_user
from response_processor.domain import audit
from response_processor.errors import ProcessorErrorCode, conflict, not_found
from servicekit import paging
from servicekit.database import Connection
from servicekit.fields import Text

Username = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Role = Literal["user", "operator", "admin"]
Roles = Annotated[list[Role], msgspec.Meta(min_length=1, max_length=3)]

COLUMNS: Final = (
    "id, username, roles, profile_type, active, must_change_password, session_version, "
    "version, created_at, updated_at, last_login_at"
)
SYNC_COLUMNS: Final = (
    "id, username, password_hash, roles, profile_type, active, must_change_password, version"
)


class UserIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new user (DESIGN: username, password, roles, profile_type)."""

    username: Username
    password: Password
    roles: Roles
    profile_type: Text
    must_change_password: bool = False


class UserPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fields to change; `active: false` deactivates (users are never deleted)."""

    password: Password | msgspec.UnsetType = msgspec.UNSET
    roles: Roles | msgspec.UnsetType = msgspec.UNSET
    profile_type: Text | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    must_change_password: bool | msgspec.UnsetType = msgspec.UNSET
    revoke_api_keys: bool = False
    """Also revoke every API key the user has on the gateway (e.g. with a password reset)."""


class UserOut(msgspec.Struct, frozen=True):
    """A user as the API shows it: never the password hash."""

    id: uuid.UUID
    username: str
    roles: list[str]
    profile_type: Text
    active: bool
    must_change_password: bool
    session_version: int
    version: int
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


UserPage = paging.Page[UserOut]
"""A page of users, by username."""
UserCursor = tuple[Text]
"""A listing's position: the last username seen (usernames are unique)."""


async def list_users(
    conn: Connection, *, cursor: str | None, limit: int, name_contains: str | None = None
) -> UserPage:
    """Users by username, a page at a time (only names containing ``name_contains``, in any
    case, when given)."""
    (after,) = paging.decode_cursor(cursor, UserCursor) if cursor else (None,)
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM app_user
            WHERE ($1::text IS NULL OR username > $1)
              AND ($3::text IS NULL OR strpos(lower(username), lower($3)) > 0)
            ORDER BY username LIMIT $2""",  # noqa: S608
        after,
        limit + 1,
        name_contains,
    )
    return paging.page_of(rows, limit, lambda row: UserOut(**dict(row)), lambda u: (u.username,))


async def get_user(conn: Connection, user_id: uuid.UUID) -> UserOut:
    """One user, or 404."""
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM app_user WHERE id = $1", user_id)  # noqa: S608
    if row is None:
        raise not_found(ProcessorErrorCode.USER_NOT_FOUND, "the user")
    return UserOut(**dict(row))


async def create_user(conn: Connection, data: UserIn, actor: audit.Actor) -> UserOut:
    """Create a user (the password must pass the policy); audited and synced."""
    _check_password(data.password, data.username)
    password_hash = await hash_password(data.password)
    async with conn.transaction():
        await _require_profile_type(conn, data.profile_type)
        row = await conn.fetchrow(
            f"""INSERT INTO app_user (id, username, password_hash, roles, profile_type,
                                      must_change_password)
                SELECT $1, $2::text, $3, $4, $5, $6
                WHERE NOT EXISTS (SELECT 1 FROM app_user WHERE lower(username) = lower($2::text))
                RETURNING {COLUMNS}""",  # noqa: S608
            uuid.uuid4(),
            data.username,
            password_hash,
            list(dict.fromkeys(data.roles)),
            data.profile_type,
            data.must_change_password,
        )
        if row is None:
            raise conflict(ProcessorErrorCode.USERNAME_TAKEN, f"{data.username!r} is taken")
        user = UserOut(**dict(row))
        await _sync(conn, user.id)
        await audit.record(
            conn,
            actor,
            audit.Action.USER_CREATED,
            target=f"user:{user.username}",
            details={"roles": user.roles, "profile_type": user.profile_type},
        )
    return user


async def update_user(
    conn: Connection, user_id: uuid.UUID, patch: UserPatch, actor: audit.Actor
) -> UserOut:
    """Apply the patch; a new password or a deactivation ends the user's sessions at once."""
    current = await get_user(conn, user_id)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    revoke_api_keys = changes.pop("revoke_api_keys")
    ends_sessions = "password" in changes or changes.get("active") is False
    if "password" in changes:
        _check_password(changes["password"], current.username)
        changes["password_hash"] = await hash_password(changes.pop("password"))
    if "roles" in changes:
        changes["roles"] = list(dict.fromkeys(changes["roles"]))
    async with conn.transaction():
        if "profile_type" in changes:
            await _require_profile_type(conn, changes["profile_type"])
        user = await _write_changes(conn, user_id, changes, bump_session=ends_sessions)
        if ends_sessions:
            await revoke_all_for_user(conn, user_id, reason=_revoke_reason(changes))
        await _sync(conn, user_id, revoke_api_keys=revoke_api_keys)
        shown = {k: v for k, v in changes.items() if k != "password_hash"}
        shown["password_changed"] = "password_hash" in changes
        if revoke_api_keys:
            shown["api_keys_revoked"] = True
        await audit.record(
            conn, actor, audit.Action.USER_UPDATED, target=f"user:{user.username}", details=shown
        )
    return user


async def set_password(conn: Connection, user_id: uuid.UUID, new_password: str) -> UserOut:
    """A user's own password change: clears must-change, ends every other session."""
    user = await get_user(conn, user_id)
    _check_password(new_password, user.username)
    changes = {"password_hash": await hash_password(new_password), "must_change_password": False}
    async with conn.transaction():
        updated = await _write_changes(conn, user_id, changes, bump_session=True)
        await revoke_all_for_user(conn, user_id, reason=RevokeReason.PASSWORD_CHANGED)
        await _sync(conn, user_id)
        actor = audit.Actor(user_id, user.username)
        await audit.record(
            conn, actor, audit.Action.PASSWORD_CHANGED, target=f"user:{user.username}"
        )
    return updated


async def user_records(conn: Connection, user_ids: list[uuid.UUID] | None) -> list[UserRecord]:
    """Sync records of these users (all of them with None), as they are now."""
    rows = await conn.fetch(
        f"SELECT {SYNC_COLUMNS} FROM app_user WHERE $1::uuid[] IS NULL OR id = ANY($1)",  # noqa: S608
        user_ids,
    )
    return [UserRecord(**dict(row)) for row in rows]


async def _write_changes(
    conn: Connection, user_id: uuid.UUID, changes: dict[str, Any], *, bump_session: bool
) -> UserOut:
    assignments = [f"{column} = ${i}" for i, column in enumerate(changes, start=2)]
    if bump_session:
        assignments.append("session_version = session_version + 1")
    assignments += ["version = version + 1", "updated_at = now()"]
    row = await conn.fetchrow(
        f"UPDATE app_user SET {', '.join(assignments)} WHERE id = $1 RETURNING {COLUMNS}",  # noqa: S608
        user_id,
        *changes.values(),
    )
    if row is None:
        raise not_found(ProcessorErrorCode.USER_NOT_FOUND, "the user")
    return UserOut(**dict(row))


async def _sync(conn: Connection, user_id: uuid.UUID, *, revoke_api_keys: bool = False) -> None:
    records = await user_records(conn, [user_id])
    if revoke_api_keys:
        records = [msgspec.structs.replace(record, revoke_api_keys=True) for record in records]
    await enqueue(conn, records)


def _revoke_reason(changes: dict[str, Any]) -> RevokeReason:
    if changes.get("active") is False:
        return RevokeReason.DEACTIVATED
    return RevokeReason.PASSWORD_CHANGED


async def _require_profile_type(conn: Connection, name: str) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM profile_type WHERE name = $1)", name):
        raise conflict(ProcessorErrorCode.PROFILE_TYPE_UNKNOWN, f"no profile type {name!r}")


def _check_password(password: str, username: str) -> None:
    problems = check_password_policy(password, username=username)
    if problems:
        raise weak_password([str(problem) for problem in problems])
