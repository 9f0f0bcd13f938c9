"""Clients that misbehave below HTTP libraries: headers sent, body withheld or cut short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


def _request_head(url: str, path: str, content_length: int) -> bytes:
    host = urlsplit(url).netloc
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


@contextlib.asynccontextmanager
async def idle_bodies(url: str, path: str, count: int) -> AsyncIterator[list[asyncio.StreamReader]]:
    """Hold `count` connections that sent complete headers and never send their body."""
    connections = [await _connect(url) for _ in range(count)]
    try:
        for _, writer in connections:
            writer.write(_request_head(url, path, 1000))
            await writer.drain()
        yield [reader for reader, _ in connections]
    finally:
        for _, writer in connections:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def abandon_body(url: str, path: str) -> None:
    """Send headers and half the declared body, then close the connection."""
    _, writer = await _connect(url)
    writer.write(_request_head(url, path, 1000) + b'{"username": "')
    await writer.drain()
    await asyncio.sleep(0.3)  # the server has started reading the body
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
