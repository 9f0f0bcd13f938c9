"""The gateway's users as authkit's login routes see them (`authkit.routes.AccountStore`)."""

from __future__ import annotations

import uuid
from typing import Final

import asyncpg

from authkit.routes import Account, AuthEvent
from request_gateway.domain.audit import Action
from servicekit import audit
from servicekit.database import Connection

COLUMNS: Final = "id, username, password_hash, roles, active, must_change_password, session_version"
FIND_SQL: Final = f"SELECT {COLUMNS} FROM app_user WHERE lower(username) = lower($1)"  # noqa: S608
GET_SQL: Final = f"SELECT {COLUMNS} FROM app_user WHERE id = $1"  # noqa: S608
ACTIONS: Final = {
    AuthEvent.LOGIN: Action.LOGIN,
    AuthEvent.LOGIN_FAILED: Action.LOGIN_FAILED,
    AuthEvent.LOGOUT: Action.LOGOUT,
}


class GatewayAccounts:
    """Synced users log in with the password hash the processor sent."""

    async def find_by_username(self, conn: Connection, username: str) -> Account | None:
        """The user with this name, compared without regard to case."""
        return _account(await conn.fetchrow(FIND_SQL, username))

    async def get(self, conn: Connection, user_id: uuid.UUID) -> Account | None:
        """The user, unless a snapshot removed them."""
        return _account(await conn.fetchrow(GET_SQL, user_id))

    async def on_login(self, conn: Connection, account: Account) -> None:
        """Remember when the user last logged in here."""
        await conn.execute("UPDATE app_user SET last_login_at = now() WHERE id = $1", account.id)

    async def audit(
        self,
        conn: Connection,
        event: AuthEvent,
        *,
        user_id: uuid.UUID | None,
        username: str | None,
        address: str,
        why: str | None = None,
    ) -> None:
        """Audit a login, a refused login (with why) or a logout."""
        await audit.record(
            conn,
            audit.Actor(user_id, username[:64] if username else None, address),
            ACTIONS[event],
            outcome="refused" if why else "ok",
            details={"why": why} if why else None,
        )


def _account(row: asyncpg.Record | None) -> Account | None:
    if row is None:
        return None
    return Account(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        roles=frozenset(row["roles"]),
        active=row["active"],
        must_change_password=row["must_change_password"],
        session_version=row["session_version"],
    )
