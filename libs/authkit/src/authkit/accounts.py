"""`AppUserAccounts`: the `authkit.routes.AccountStore` of a service whose users live in
an ``app_user`` table, audited in its ``audit_log`` (`servicekit.audit`).

Both services keep their users that way: the processor as the authority, the gateway as
synced copies. The table needs the columns ``id, username, password_hash, roles, active,
must_change_password, session_version, last_login_at``; usernames compare by
`authkit.usernames.canonical_username` (ASCII case only). Audit entries use the
`AuthEvent` values as action names (``login``, ``login_failed`` — outcome ``refused``
with ``{"why": ...}`` — and ``logout``).
"""

from __future__ import annotations

import uuid
from typing import Final

import asyncpg

from authkit.routes import Account, AuthEvent
from authkit.usernames import CANONICAL_USERNAME_SQL, canonical_username
from servicekit import audit
from servicekit.database import Connection

__all__ = ["AppUserAccounts"]

COLUMNS: Final = "id, username, password_hash, roles, active, must_change_password, session_version"
# The first condition is the unique index on lower(username); the second makes the match
# exactly `canonical_username` (lower() alone follows the locale: 'İ' would match 'i').
BY_USERNAME_SQL: Final = f"""
    SELECT {COLUMNS} FROM app_user
    WHERE lower(username) = lower($1) AND {CANONICAL_USERNAME_SQL} = $2
"""  # noqa: S608
BY_ID_SQL: Final = f"SELECT {COLUMNS} FROM app_user WHERE id = $1"  # noqa: S608
LAST_LOGIN_SQL: Final = "UPDATE app_user SET last_login_at = now() WHERE id = $1"
USERNAME_LIMIT: Final = 64  # the audit log's actor column


class AppUserAccounts:
    """Accounts from ``app_user``; see the module docstring."""

    async def find_by_username(self, conn: Connection, username: str) -> Account | None:
        """The user a login names, or None."""
        return _account(
            await conn.fetchrow(BY_USERNAME_SQL, username, canonical_username(username))
        )

    async def get(self, conn: Connection, user_id: uuid.UUID) -> Account | None:
        """The user of a refresh token, or None."""
        return _account(await conn.fetchrow(BY_ID_SQL, user_id))

    async def on_login(self, conn: Connection, account: Account) -> None:
        """Stamp ``last_login_at``."""
        await conn.execute(LAST_LOGIN_SQL, account.id)

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
        """One `audit_log` entry; a failed login is ``refused`` with ``{"why": ...}``."""
        await audit.record(
            conn,
            audit.Actor(user_id, username[:USERNAME_LIMIT] if username else None, address),
            str(event),
            outcome="refused" if event is AuthEvent.LOGIN_FAILED else "ok",
            details={"why": why} if why is not None else None,
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
