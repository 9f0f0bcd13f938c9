"""First start: default profile types from the seed file, and the bootstrap admin."""

from __future__ import annotations

import asyncio
import secrets
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from airlink.outbox import enqueue
from authkit.passwords import hash_password
from response_processor.domain import audit
from response_processor.domain.profile_types import ProfileTypeIn, get_profile_type
from response_processor.domain.users import user_records
from servicekit.database import Connection

SEED_FILE: Final = Path(__file__).parents[1] / "db" / "seed" / "profile_types.toml"
SEED_KIND: Final = "profile_type"


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


async def ensure_admin(
    conn: Connection, username: str, password_file: Path | None, profile_type: str
) -> CreatedAdmin | None:
    """Create the bootstrap admin if no admin exists; it must change its password first."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM app_user WHERE 'admin' = ANY(roles))"):
        return None
    return await create_admin(conn, username, password_file, profile_type)


async def create_admin(
    conn: Connection, username: str, password_file: Path | None, profile_type: str
) -> CreatedAdmin:
    """An admin with a password from the file, or generated; flagged must-change."""
    generated = password_file is None
    if password_file is None:
        password = secrets.token_urlsafe(18)
    else:
        text = await asyncio.to_thread(password_file.read_text, encoding="utf-8")
        password = text.rstrip("\n")
    password_hash = await hash_password(password)
    async with conn.transaction():
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
