"""An operator's own handler package, as docs/handlers.md describes, for the registry tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from response_processor.processing.handlers.base import Handler, HandlerContext, HandlerError


class Lookup(msgspec.Struct, forbid_unknown_fields=True):
    """The payload of `inventory.lookup`."""

    sku: str


STOCK = {"A-1": 12}


async def run(payload: Lookup, context: HandlerContext) -> dict[str, object]:
    """How many of an item are in stock."""
    if payload.sku not in STOCK:
        raise HandlerError("not_found", f"no item {payload.sku!r}")
    return {"sku": payload.sku, "quantity": STOCK[payload.sku]}


handler = Handler(type="inventory.lookup", run=run, payload_type=Lookup, timeout_s=5)
not_a_handler = {"type": "inventory.lookup"}


class Nap(msgspec.Struct, forbid_unknown_fields=True):
    """The payload of `diagnostics.nap`: where to leave a mark, and how long to sleep."""

    marker: str
    seconds: float


async def nap(payload: Nap, context: HandlerContext) -> dict[str, object]:
    """Leave a mark (so a test can kill the worker mid-run), sleep, answer."""
    Path(payload.marker).with_suffix(f".{context.attempt}").write_text("started")
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds, "attempt": context.attempt}


slow_handler = Handler(type="diagnostics.nap", run=nap, payload_type=Nap, timeout_s=3)
