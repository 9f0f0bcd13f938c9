"""First start: default profile types from the seed file, and the bootstrap admin."""

from __future__ import annotations

import asyncio
import secrets
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
import msgspec

from airlink.outbox import enqueue
from authkit.passwords import hash_password
from response_processor.db.piccolo_app import APPS
from response_processor.domain import audit
from response_processor.domain.profile_types import ProfileTypeIn, get_profile_type
from response_processor.domain.users import user_records
from response_processor.settings import ProcessorSettings
from servicekit.database import Connection
from servicekit.migrations import migrate

SEED_FILE: Final = Path(__file__).parents[1] / "db" / "seed" / "profile_types.toml"
SEED_KIND: Final = "profile_type"
BOOTSTRAP_LOCK_ID: Final = 0x50_72_6F_63_42_6F_6F_74  # "ProcBoot"


class SeedFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The version-controlled seed file."""

    profile_types: list[ProfileTypeIn]


@dataclass(frozen=True, slots=True)
class CreatedAdmin:
    """The admin made at first start; the password is shown once, never logged."""

    username: str
    password: str
    generated: bool


def read_seed(path: Path = SEED_FILE) -> SeedFile:
    """The seed file, validated."""
    return msgspec.convert(tomllib.loads(path.read_text(encoding="utf-8")), SeedFile)


async def seed_profile_types(conn: Connection, seed: SeedFile) -> list[str]:
    """Create seed entries never applied before; an operator's later changes stay."""
    created: list[str] = []
    async with conn.transaction():
        for entry in seed.profile_types:
            first_time = await conn.fetchval(
                """INSERT INTO seed_applied (kind, name) VALUES ($1, $2)
                   ON CONFLICT (kind, name) DO NOTHING RETURNING true""",
                SEED_KIND,
                entry.name,
            )
            if not first_time:
                continue
            inserted = await conn.fetchval(
                """INSERT INTO profile_type (name, requests_per_minute, burst,
                       allowed_request_types, max_payload_bytes, max_pending_requests)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING
                   RETURNING true""",
                entry.name,
                entry.requests_per_minute,
                entry.burst,
                entry.allowed_request_types,
                entry.max_payload_bytes,
                entry.max_pending_requests,
            )
            if inserted:
                await enqueue(conn, [(await get_profile_type(conn, entry.name)).record()])
                created.append(entry.name)
        if created:
            await audit.record(
                conn,
                audit.SYSTEM,
                audit.Action.PROFILE_TYPES_SEEDED,
                details={"profile_types": created},
            )
    return created


async def prepare_database(dsn: str, settings: ProcessorSettings) -> CreatedAdmin | None:
    """Migrate, seed, and create the bootstrap admin if there is none; safe to run anywhere.

    Several processes starting at once (API, workers, replicas) take turns: migrations under
    servicekit's lock, the rest under the processor's own advisory lock.
    """
    await migrate(dsn, APPS)
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK_ID)
            await seed_profile_types(connection, read_seed())
            return await ensure_admin(
                connection, settings.admin_username, settings.admin_password_file
            )
    finally:
        await connection.close()


async def ensure_admin(
    conn: Connection, username: str, password_file: Path | None
) -> CreatedAdmin | None:
    """Create the bootstrap admin if no admin exists; it must change its password first."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM app_user WHERE 'admin' = ANY(roles))"):
        return None
    return await create_admin(conn, username, password_file)


async def create_admin(conn: Connection, username: str, password_file: Path | None) -> CreatedAdmin:
    """An admin with a password from the file, or generated; flagged must-change."""
    generated = password_file is None
    if password_file is None:
        password = secrets.token_urlsafe(18)
    else:
        text = await asyncio.to_thread(password_file.read_text, encoding="utf-8")
        password = text.rstrip("\n")
    password_hash = await hash_password(password)
    async with conn.transaction():
        # Admins need a profile type like everyone: the seeded `standard`, else the first.
        profile_type = await conn.fetchval(
            "SELECT name FROM profile_type ORDER BY name <> 'standard', name LIMIT 1"
        )
        if profile_type is None:
            raise RuntimeError("no profile type exists: create one before an admin")
        user_id = uuid.uuid4()
        await conn.execute(
            """INSERT INTO app_user (id, username, password_hash, roles, profile_type,
                                     must_change_password)
               VALUES ($1, $2, $3, ARRAY['admin'], $4, true)""",
            user_id,
            username,
            password_hash,
            profile_type,
        )
        await enqueue(conn, await user_records(conn, [user_id]))
        await audit.record(
            conn, audit.SYSTEM, audit.Action.ADMIN_CREATED, target=f"user:{username}"
        )
    return CreatedAdmin(username, password, generated)


def announce(created: CreatedAdmin) -> None:
    """Tell the operator about a new admin: the password once, on stderr, never in a log."""
    lines = [f"Admin {created.username!r} created; it must change its password at first login."]
    if created.generated:
        lines.append(f"Generated password (shown once): {created.password}")
    print("\n".join(lines), file=sys.stderr, flush=True)
