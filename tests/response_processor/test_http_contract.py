"""The processor's HTTP contract on every route (see tests/http_checks.py)."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.http_checks import assert_options_lists_every_method


async def test_options_answers_without_a_credential_and_names_every_method(
    client: AsyncTestClient[Any],
) -> None:
    await assert_options_lists_every_method(client, client.app)
