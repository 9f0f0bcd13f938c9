"""The append-only audit log: who did what, from where, with what outcome.

Each service owns an ``audit_log`` table in its own migrations, with these columns:
``actor_id uuid NULL``, ``actor varchar(64) NULL``, ``action varchar(64)``,
``target varchar(200) NULL``, ``outcome varchar(16)``, ``client_address varchar(64) NULL``,
``details jsonb`` (plus its own ``id`` and ``at``), and its own `StrEnum` of action names.
`record` writes one row; it takes the service's connection, so the entry commits or rolls
back with the change it describes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from servicekit.database import Connection

__all__ = ["INSERT_SQL", "SYSTEM", "Actor", "record"]

INSERT_SQL: Final = """
    INSERT INTO audit_log (actor_id, actor, action, target, outcome, client_address, details)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
"""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, or the system itself (actor_id None)."""

    id: uuid.UUID | None
    name: str | None
    address: str | None = None


SYSTEM: Final = Actor(None, "system")
"""The service itself (imports, exports, bootstrap)."""


async def record(
    connection: Connection,
    actor: Actor,
    action: str,
    *,
    target: str | None = None,
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry; call it inside the transaction of the change it describes."""
    await connection.execute(
        INSERT_SQL,
        actor.id,
        actor.name,
        str(action),
        target,
        outcome,
        actor.address,
        msgspec.json.encode(dict(details or {})).decode(),
    )
