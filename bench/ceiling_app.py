"""The request gateway's ceiling: the least a Litestar app can do per submit and per read.

- `POST /insert`: validates `{"type": str, "payload": object}` into a msgspec struct and
  INSERTs one request-shaped row; 202 with the row's id;
- `GET /rows/{id}`: a primary-key SELECT of one row, as JSON (404 when missing);
- `GET /`: a constant JSON body, the framework and server alone.

One asyncpg pool of POOL_SIZE connections per worker process, made in the lifespan, that
like the services' pools (`servicekit.database.open_pool`) skips asyncpg's reset query on
release (one round trip per request; nothing here leaves session state); the gateway
compared against it should do the same or say how it differs. jsonb is decoded and encoded
with msgspec. Serve it the way the gateway is served, e.g.:

    CEILING_DATABASE_URL=postgresql://... granian --interface asgi --workers 2 \
        --factory bench.ceiling_app:create_app
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec
from litestar import Litestar, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

DATABASE_URL_ENV: Final = "CEILING_DATABASE_URL"
POOL_SIZE: Final = 10
# Requests carry no identity here; the gateway's rows carry their user's.
USER_ID: Final = uuid.UUID("00000000-0000-4000-8000-000000000001")
CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS ceiling_request (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)"""
_INSERT: Final = """
INSERT INTO ceiling_request (id, user_id, type, payload, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'received', now(), now())"""
_SELECT: Final = """
SELECT id, user_id, type, payload, status, created_at, updated_at
FROM ceiling_request WHERE id = $1"""


class NewRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The submitted body."""

    type: str
    payload: dict[str, Any]


class Accepted(msgspec.Struct):
    """The answer to a submit."""

    id: uuid.UUID


class Row(msgspec.Struct):
    """One stored row, as read back."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


@post("/insert", status_code=202)
async def insert(data: NewRequest, state: State) -> Accepted:
    """Store one row."""
    row_id = uuid.uuid4()
    await state.pool.execute(_INSERT, row_id, USER_ID, data.type, data.payload)
    return Accepted(row_id)


@get("/rows/{row_id:uuid}")
async def read(row_id: uuid.UUID, state: State) -> Row:
    """Read one row by its primary key."""
    record = await state.pool.fetchrow(_SELECT, row_id)
    if record is None:
        raise NotFoundException(f"no row {row_id}")
    return Row(**dict(record.items()))


@get("/")
async def index() -> dict[str, str]:
    """A constant answer."""
    return {"status": "ok"}


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: msgspec.json.encode(value).decode(),
        decoder=msgspec.json.decode,
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo on release (asyncpg still drops listeners and open transactions)."""


@asynccontextmanager
async def _database(app: Litestar) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(
        os.environ[DATABASE_URL_ENV],
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        init=_init_connection,
        reset=_keep_session,
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


def create_app() -> Litestar:
    """The ceiling app (a factory, for granian's `--factory`)."""
    return Litestar([insert, read, index], lifespan=[_database], openapi_config=None)
