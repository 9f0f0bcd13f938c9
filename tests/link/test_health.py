"""The link's health check: non-critical, failing when the peer's last batch is stale."""

from __future__ import annotations

from pathlib import Path

from airlink import link_health_check
from batchformat import load_signing_key
from servicekit.health import run_health_checks
from tests.link.conftest import SideFactory, at, publish


async def test_the_link_check_fails_without_taking_the_service_down_until_a_batch_came(
    sides: SideFactory,
) -> None:
    processor = await sides.side("processor")
    check = processor.link.health_check()
    assert (check.name, check.critical) == ("link:request-net", False)
    report = await run_health_checks([check], budget_s=5)
    assert report.status == "degraded"
    assert report.http_status == 200
    assert report.checks[check.name].detail == (
        "LinkStale: no batch from request-net yet; 0 missing; 0 unacknowledged"
    )


async def test_the_link_check_passes_while_fresh_and_fails_once_stale(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    for seq in (1, 3):
        publish(processor.settings.inbox_dir, key, [], seq)
    await processor.link.import_once(at(0))
    now = at(90)
    check = link_health_check(processor.pool, "request-net", stale_after_s=90, clock=lambda: now)
    fresh = await run_health_checks([check], budget_s=5)
    assert fresh.status == "ok"
    assert fresh.checks[check.name].detail == (
        "last batch from request-net 90 s ago; 1 missing (seq 2); 0 unacknowledged"
    )
    now = at(91)
    stale = await run_health_checks([check], budget_s=5)
    assert stale.status == "degraded"
    detail = stale.checks[check.name].detail or ""
    assert detail.startswith("LinkStale: last batch from request-net 91 s ago (stale after 90 s)")
