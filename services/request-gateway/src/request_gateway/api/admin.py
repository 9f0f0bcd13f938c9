"""`/api/v1/admin`: every user's requests, the link's batches, export now (operators, admins)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.params import FromQuery, QueryParameter
from litestar.status_codes import HTTP_200_OK

from airlink.api import batches_controller
from authkit.guards import requires_roles
from authkit.identity import current_user
from request_gateway.api.context import runtime_of
from request_gateway.domain import requests
from request_gateway.domain.audit import Action
from request_gateway.domain.requests import Page, Status
from servicekit import audit
from servicekit.connection import client_address
from servicekit.database import Pool
from servicekit.paging import Cursor

READ: Final = requires_roles("operator", "admin")
"""Operators and admins: the admin routes read, and may export now."""

Limit = Annotated[int, QueryParameter(ge=1, le=500)]


class ExportOut(msgspec.Struct, frozen=True):
    """What an export pass published."""

    batches: int
    records: int


class AdminController(Controller):
    """What operators and admins see of the gateway."""

    path = "/api/v1/admin"
    tags = ("admin",)
    guards = [READ]  # noqa: RUF012 - Litestar's own attribute

    @get("/requests")
    async def list_requests(
        self,
        request: Request[Any, Any, Any],
        status: FromQuery[Status | None] = None,
        user_id: FromQuery[uuid.UUID | None] = None,
        cursor: Cursor = None,
        limit: Limit = 100,
    ) -> Page:
        """Everyone's requests (or one user's), newest first."""
        async with runtime_of(request).pool.acquire() as conn:
            return await requests.list_page(
                conn, user_id=user_id, status=status, cursor=cursor, limit=limit
            )

    @post("/export", status_code=HTTP_200_OK)
    async def export_now(self, request: Request[Any, Any, Any]) -> ExportOut:
        """Stage queued requests and publish batches now, without waiting for the window."""
        runtime = runtime_of(request)
        report = await runtime.link.export_once()
        records = sum(batch.record_count for batch in report.batches)
        async with runtime.pool.acquire() as conn:
            user = current_user(request)
            await audit.record(
                conn,
                audit.Actor(user.id, None, client_address(request)),
                Action.EXPORT_REQUESTED,
                details={"batches": len(report.batches), "records": records},
            )
        return ExportOut(len(report.batches), records)


def _pool(connection: ASGIConnection[Any, Any, Any, Any]) -> Pool:
    return runtime_of(connection).pool


BatchesController = batches_controller(_pool, path="/api/v1/admin/batches", guards=[READ])
