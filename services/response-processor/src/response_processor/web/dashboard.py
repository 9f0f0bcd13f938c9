"""The dashboard: link health both ways, backlog, dead letters, quarantined batches.

Every figure comes from the code the metrics and ``/health`` use: the health checks
themselves, the link state that feeds the link gauges and check, the backlog that feeds
the backlog gauges, and the link's own batch listings.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from litestar import Request, get
from litestar.response import Template

from airlink.batches import list_outbound
from response_processor.api.context import runtime_of
from response_processor.api.guards import READ
from response_processor.health import health_checks
from response_processor.requests.reads import count_open_dead_letters
from response_processor.requests.reconcile import read_backlog
from response_processor.web.quarantine import read_quarantine
from response_processor.web.render import render
from servicekit.health import run_health_checks

RECENT: Final = 50
REFRESH_SECONDS: Final = 15


@get("/", guards=[READ])
async def dashboard(request: Request[Any, Any, Any]) -> Template:
    """How the processor and its link are doing now."""
    runtime = runtime_of(request)
    report, link, backlog = await asyncio.gather(
        run_health_checks(health_checks(runtime)),
        runtime.link.state(),
        read_backlog(runtime.pool, runtime.arq),
    )
    async with runtime.pool.acquire() as conn:
        open_dead_letters = await count_open_dead_letters(conn)
        outbound = (await list_outbound(conn, limit=RECENT)).items
    quarantined = await asyncio.to_thread(read_quarantine, runtime.link.settings.quarantine_dir)
    return render(
        request,
        "dashboard.html",
        report=report,
        link=link,
        stale_after_s=runtime.link.settings.stale_after_s,
        backlog=backlog,
        open_dead_letters=open_dead_letters,
        resent=[batch for batch in outbound if batch.publish_count > 1],
        quarantined=quarantined,
        refresh_seconds=REFRESH_SECONDS,
    )
