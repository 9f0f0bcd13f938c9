"""The one status type of a processor request, and the SQL spelling of its groups."""

from __future__ import annotations

from typing import Final, Literal, get_args

from airlink.records import ResponseStatus

RequestStatus = Literal["received", "processing", ResponseStatus]
"""Received, then processing, then one of the final statuses the gateway is told."""

FINAL: Final[tuple[RequestStatus, ...]] = get_args(ResponseStatus)
UNFINISHED: Final[tuple[RequestStatus, ...]] = tuple(
    status for status in get_args(RequestStatus) if status not in FINAL
)


def sql_list(statuses: tuple[RequestStatus, ...]) -> str:
    """`('a', 'b')`, for `status IN ...` in SQL written once at import."""
    return "(" + ", ".join(f"'{status}'" for status in statuses) + ")"


FINAL_SQL: Final = sql_list(FINAL)
UNFINISHED_SQL: Final = sql_list(UNFINISHED)
