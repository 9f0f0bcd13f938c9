"""The PostgreSQL channel that tells every server process what changed in users and keys.

A sync import or an API key change sends `NOTIFY` inside its own transaction, so the news
arrives exactly when the change is committed; each server process listens and drops the
entries it had cached (`request_gateway.identity.cache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from servicekit.database import Connection

CHANNEL: Final = "gateway_identity"
ALL: Final = "all"
"""Drop everything: many users changed at once (a snapshot, a large sync batch)."""
API_KEYS: Final = "api_keys"
"""Drop every cached API key (a key revoked, a user's keys revoked)."""
USER_PREFIX: Final = "user:"
PROFILE_PREFIX: Final = "profile:"
# NOTIFY payloads are limited to 8000 bytes; beyond this many items one "all" is cheaper.
MAX_ITEMS: Final = 100


async def notify(conn: Connection, messages: Iterable[str]) -> None:
    """Queue the messages on the channel; PostgreSQL delivers them when the caller commits."""
    messages = list(dict.fromkeys(messages))
    if len(messages) > MAX_ITEMS:
        messages = [ALL]
    for message in messages:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, message)
