"""Opaque cursors: a key goes out and comes back typed; anything else is `invalid_cursor`."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicekit.errors import ApiError
from servicekit.fields import BigInt, Text
from servicekit.paging import Time, decode_cursor, encode_cursor, page_of

Key = tuple[Time, uuid.UUID]


@given(
    at=st.datetimes(
        timezones=st.just(UTC), min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)
    ),
    key_id=st.uuids(),
)
def test_a_cursor_names_its_key_exactly(at: datetime, key_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor((at, key_id)), Key) == (at, key_id)


def test_times_come_back_in_utc() -> None:
    at = datetime(2026, 5, 1, 12, tzinfo=timezone(timedelta(hours=5)))
    (back, _) = decode_cursor(encode_cursor((at, uuid.uuid4())), Key)
    assert back == at
    assert back.tzinfo == UTC


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("cursor", "key_type"),
    [
        pytest.param("nonsense", Key, id="not-base64-json"),
        pytest.param(_raw("[1]"), Key, id="wrong-shape"),
        pytest.param(_raw(f'["2026-01-01T00:00:00", "{uuid.uuid4()}"]'), Key, id="no-offset"),
        pytest.param(_raw(f'["9999-12-31T23:59:59-14:00", "{uuid.uuid4()}"]'), Key, id="y10k"),
        pytest.param(_raw(f"[{2**63}]"), tuple[BigInt], id="beyond-bigint"),
        pytest.param(_raw('["a\\u0000b"]'), tuple[Text], id="nul"),
        pytest.param(_raw("\xff"), tuple[Text], id="not-utf-8"),
    ],
)
def test_a_cursor_the_api_did_not_give_is_invalid(cursor: str, key_type: object) -> None:
    with pytest.raises(ApiError) as raised:
        decode_cursor(cursor, key_type)
    assert (raised.value.status_code, raised.value.code) == (400, "invalid_cursor")


def test_a_page_has_a_next_cursor_only_when_more_rows_follow() -> None:
    rows = [1, 2, 3]
    full = page_of(rows, 2, lambda row: row * 10, lambda item: (item,))
    assert full.items == [10, 20]
    assert full.next_cursor is not None
    assert decode_cursor(full.next_cursor, tuple[int]) == (20,)
    last = page_of(rows, 3, lambda row: row, lambda item: (item,))
    assert (last.items, last.next_cursor) == ([1, 2, 3], None)
