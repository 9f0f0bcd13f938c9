"""Batches in and out, and the quarantined ones with the runbook step for each reason."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from litestar import Request, get
from litestar.response import Template

from airlink.batches import list_inbound, list_outbound
from response_processor.api.context import runtime_of
from response_processor.api.guards import READ
from response_processor.web.quarantine import read_quarantine
from response_processor.web.render import render

RECENT: Final = 50


@get("/batches", guards=[READ])
async def batches(request: Request[Any, Any, Any]) -> Template:
    """The newest batches each way (the link's own listings) and the quarantine."""
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn:
        outbound = (await list_outbound(conn, limit=RECENT)).items
        inbound = (await list_inbound(conn, limit=RECENT)).items
    quarantined = await asyncio.to_thread(read_quarantine, runtime.link.settings.quarantine_dir)
    return render(
        request, "batches.html", outbound=outbound, inbound=inbound, quarantined=quarantined
    )
