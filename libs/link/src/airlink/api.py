"""The operators' view of the link over HTTP: a controller both services mount."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.connection import ASGIConnection
from litestar.params import QueryParameter
from litestar.types import Guard

from airlink.batches import InboundBatch, OutboundBatch, list_inbound, list_outbound
from batchformat.models import MAX_SEQ
from servicekit.database import Pool

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
# A seq, or one past the largest (the newest page): a bigint column, so bounded like a seq.
BeforeSeq = Annotated[int | None, QueryParameter(ge=0, le=MAX_SEQ + 1)]
PoolOf = Callable[[ASGIConnection[Any, Any, Any, Any]], Pool]


class RecentBatches(msgspec.Struct, frozen=True):
    """The newest batches each way."""

    outbound: list[OutboundBatch]
    inbound: list[InboundBatch]


def batches_controller(pool_of: PoolOf, *, path: str, guards: Sequence[Guard]) -> type[Controller]:
    """GET {path} (both ways), {path}/outbound and {path}/inbound, newest first."""
    prefix, guard_list = path, list(guards)

    class BatchesController(Controller):
        """Batches sent to the peer and received from it."""

        path = prefix
        tags = ("batches",)
        guards = guard_list

        @get("/")
        async def recent(self, request: Request[Any, Any, Any], limit: Limit = 20) -> RecentBatches:
            """The newest batches each way."""
            async with pool_of(request).acquire() as conn:
                return RecentBatches(
                    await list_outbound(conn, limit=limit), await list_inbound(conn, limit=limit)
                )

        @get("/outbound")
        async def outbound(
            self,
            request: Request[Any, Any, Any],
            before_seq: BeforeSeq = None,
            limit: Limit = 100,
        ) -> list[OutboundBatch]:
            """Sent batches with their publication and acknowledgement."""
            async with pool_of(request).acquire() as conn:
                return await list_outbound(conn, before_seq=before_seq, limit=limit)

        @get("/inbound")
        async def inbound(
            self,
            request: Request[Any, Any, Any],
            before_seq: BeforeSeq = None,
            limit: Limit = 100,
        ) -> list[InboundBatch]:
            """Received batches, each applied once however often it came."""
            async with pool_of(request).acquire() as conn:
                return await list_inbound(conn, before_seq=before_seq, limit=limit)

    return BatchesController
