"""Secrets stay secret: a login's password and tokens never reach a log line or a response."""

from __future__ import annotations

import io
import logging

from servicekit.logs import configure_logging
from tests.response_processor.conftest import ADMIN_PASSWORD, NEW_ADMIN_PASSWORD, Client, login


async def test_passwords_and_tokens_never_appear_in_the_logs(client: Client) -> None:
    stream = io.StringIO()
    handler = configure_logging("response-processor", json=True, level="DEBUG", stream=stream)
    tokens = await login(client, "admin", ADMIN_PASSWORD)
    await client.post(
        "/api/v1/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": NEW_ADMIN_PASSWORD},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    bad = await client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "Wrong-Secret-123456"}
    )
    assert bad.status_code == 401
    assert "Wrong-Secret-123456" not in bad.text
    logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert "/api/v1/auth/login" in output  # the requests were logged...
    for secret in (
        ADMIN_PASSWORD,
        NEW_ADMIN_PASSWORD,
        "Wrong-Secret-123456",
        tokens["access_token"],
        tokens["refresh_token"],
    ):
        assert secret not in output  # ...without a single secret
