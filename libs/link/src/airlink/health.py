"""The link's check for `GET /health`: non-critical, failing when the peer has gone quiet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from airlink.state import LinkState, read_link_state
from servicekit.database import Pool
from servicekit.health import DEFAULT_CHECK_TIMEOUT_S, HealthCheck


class LinkStale(Exception):
    """No batch from the peer within `stale_after_s`."""


def link_health_check(
    pool: Pool,
    peer: str,
    *,
    stale_after_s: float,
    name: str | None = None,
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HealthCheck:
    """A non-critical check named `link:<peer>` that fails when the last inbound is stale."""

    async def check() -> str | None:
        state = await read_link_state(pool, peer, clock())
        if state.is_stale(stale_after_s):
            raise LinkStale(_describe(state, stale_after_s))
        return _describe(state, stale_after_s)

    # Non-critical: a quiet peer degrades the service (200) but must not take it out of a
    # load balancer, which would not bring the peer back.
    return HealthCheck(name or f"link:{peer}", check, timeout_s, critical=False)


def _describe(state: LinkState, stale_after_s: float) -> str:
    age = state.last_inbound_age_s
    if age is None:
        inbound = f"no batch from {state.peer} yet"
    elif age > stale_after_s:
        inbound = f"last batch from {state.peer} {age:.0f} s ago (stale after {stale_after_s:g} s)"
    else:
        inbound = f"last batch from {state.peer} {age:.0f} s ago"
    missing = f"{state.missing_batches} missing"
    if state.missing_seqs:
        missing += " (seq " + ", ".join(str(seq) for seq in state.missing_seqs[:5]) + ")"
    unacknowledged = f"{state.unacknowledged_batches} unacknowledged"
    if state.unacknowledged_batches:
        unacknowledged += f" (oldest {state.oldest_unacknowledged_age_s:.0f} s)"
    return f"{inbound}; {missing}; {unacknowledged}"
