"""Per-peer link state, computed with SQL: what the health check and the gauges report."""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from airlink import metrics
from airlink.schema import INBOUND_BATCH, OUTBOUND_BATCH, PEER
from servicekit.database import Connection, Pool

MISSING_SAMPLE: Final = 20  # missing seqs listed by name; the count covers all of them

_ENSURE_PEER = f"INSERT INTO {PEER} (peer) VALUES ($1) ON CONFLICT (peer) DO NOTHING"

# Seqs up to inbound_contiguous_seq all arrived (the importer advances it), so only the few
# batches above it are counted: the query stays small however long the link has run. Gaps
# are ranges between consecutive seqs that arrived (lag()), never enumerated: only the first
# $2 seqs of each range are listed, so a peer's jump of 10^12 costs no more than one of 2.
_STATE = f"""
    SELECT
        p.last_inbound_at,
        p.inbound_max_seq - p.inbound_contiguous_seq - (
            SELECT count(DISTINCT b.seq) FROM {INBOUND_BATCH} AS b
            WHERE b.source = p.peer AND b.seq > p.inbound_contiguous_seq
        ) AS missing,
        ARRAY(
            SELECT s FROM (
                SELECT lag(d.seq, 1, p.inbound_contiguous_seq) OVER (ORDER BY d.seq) + 1 AS lo,
                       d.seq - 1 AS hi
                FROM (
                    SELECT DISTINCT b.seq FROM {INBOUND_BATCH} AS b
                    WHERE b.source = p.peer AND b.seq > p.inbound_contiguous_seq
                ) AS d
            ) AS gap,
            LATERAL generate_series(gap.lo, least(gap.hi, gap.lo + $2 - 1)) AS s
            WHERE gap.lo <= gap.hi
            ORDER BY s LIMIT $2
        ) AS missing_seqs,
        u.unacknowledged,
        u.oldest_published_at
    FROM {PEER} AS p,
    LATERAL (
        SELECT count(*) AS unacknowledged, min(o.published_at) AS oldest_published_at
        FROM {OUTBOUND_BATCH} AS o
        WHERE o.peer = p.peer AND o.acknowledged_at IS NULL AND o.published_at IS NOT NULL
    ) AS u
    WHERE p.peer = $1
"""


@dataclass(frozen=True, slots=True)
class LinkState:
    """How the link to one peer is doing, as of `now`."""

    peer: str
    now: datetime
    last_inbound_at: datetime | None
    missing_batches: int
    missing_seqs: tuple[int, ...]  # the first few of them
    unacknowledged_batches: int
    oldest_unacknowledged_at: datetime | None

    @property
    def last_inbound_age_s(self) -> float | None:
        """Seconds since the last batch from the peer; None if none ever came."""
        if self.last_inbound_at is None:
            return None
        return max((self.now - self.last_inbound_at).total_seconds(), 0.0)

    @property
    def oldest_unacknowledged_age_s(self) -> float:
        """Seconds since the oldest unacknowledged batch was first published (0 if none)."""
        if self.oldest_unacknowledged_at is None:
            return 0.0
        return max((self.now - self.oldest_unacknowledged_at).total_seconds(), 0.0)

    def is_stale(self, stale_after_s: float) -> bool:
        """Whether the peer has been silent for longer than `stale_after_s` (or ever)."""
        age = self.last_inbound_age_s
        return age is None or age > stale_after_s


async def ensure_peer(pool: Pool | Connection, peer: str) -> None:
    """Create the peer's row if it does not exist yet."""
    await pool.execute(_ENSURE_PEER, peer)


async def read_link_state(conn: Pool | Connection, peer: str, now: datetime) -> LinkState:
    """The link state towards `peer`, from the link tables."""
    row = await conn.fetchrow(_STATE, peer, MISSING_SAMPLE)
    if row is None:  # this side has not run yet
        return LinkState(peer, now, None, 0, (), 0, None)
    return LinkState(
        peer=peer,
        now=now,
        last_inbound_at=row["last_inbound_at"],
        missing_batches=row["missing"],
        missing_seqs=tuple(row["missing_seqs"]),
        unacknowledged_batches=row["unacknowledged"],
        oldest_unacknowledged_at=row["oldest_published_at"],
    )


def set_gauges(state: LinkState) -> None:
    """Publish a state through the link's gauges."""
    age = state.last_inbound_age_s
    metrics.LAST_INBOUND_AGE.labels(state.peer).set(float("inf") if age is None else age)
    metrics.MISSING_BATCHES.labels(state.peer).set(state.missing_batches)
    metrics.UNACKNOWLEDGED_BATCHES.labels(state.peer).set(state.unacknowledged_batches)
    metrics.OLDEST_UNACKNOWLEDGED_AGE.labels(state.peer).set(state.oldest_unacknowledged_age_s)
