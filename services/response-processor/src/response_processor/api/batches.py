"""`/api/v1/batches`: what crossed the link, each way (operators and admins)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import FromQuery, QueryParameter

from airlink.batches import InboundBatch, OutboundBatch, list_inbound, list_outbound
from response_processor.api.context import runtime_of
from response_processor.api.guards import READ

Limit = Annotated[int, QueryParameter(ge=1, le=500)]


class BatchesController(Controller):
    """Batches sent to the gateway and received from it, newest first."""

    path = "/api/v1/batches"
    tags = ("batches",)
    guards = [READ]  # noqa: RUF012 - Litestar's own attribute

    @get("/outbound")
    async def outbound(
        self,
        request: Request[Any, Any, Any],
        before_seq: FromQuery[int | None] = None,
        limit: Limit = 100,
    ) -> list[OutboundBatch]:
        """Sent batches with their publication and acknowledgement."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_outbound(conn, before_seq=before_seq, limit=limit)

    @get("/inbound")
    async def inbound(
        self,
        request: Request[Any, Any, Any],
        before_seq: FromQuery[int | None] = None,
        limit: Limit = 100,
    ) -> list[InboundBatch]:
        """Received batches, each applied once however often it came."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_inbound(conn, before_seq=before_seq, limit=limit)
