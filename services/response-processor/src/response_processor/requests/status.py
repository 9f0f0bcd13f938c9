"""The one status type of a processor request, its groups, and their SQL spelling."""

from __future__ import annotations

from typing import Final, Literal, get_args

from airlink.records import ResponseStatus

RequestStatus = Literal["received", "processing", ResponseStatus]
"""Received, then processing, then one of the final statuses the gateway is told."""

FINAL: Final[tuple[RequestStatus, ...]] = get_args(ResponseStatus)
UNFINISHED: Final[tuple[RequestStatus, ...]] = tuple(
    status for status in get_args(RequestStatus) if status not in FINAL
)
# For `status IN ...`: a tuple of two or more strings prints as an SQL list, `('a', 'b')`.
FINAL_SQL: Final = str(FINAL)
UNFINISHED_SQL: Final = str(UNFINISHED)
