"""Rendering: a batch is a pure function of its rows; records go out as they were encoded."""

from __future__ import annotations

from pathlib import Path

import msgspec

from airlink.render import OUTBOUND_COLUMNS, OutboundBatchRow, render_batch
from tests.link.conftest import T0, SideFactory, at, read_batch, request

SELECT = f"SELECT {OUTBOUND_COLUMNS} FROM link_outbound_batch WHERE seq = 1"  # noqa: S608


async def test_rendering_twice_gives_the_same_bytes_as_the_writer_would(
    sides: SideFactory, tmp_path: Path, key_dir: Path
) -> None:
    gateway = await sides.side("gateway")
    await gateway.enqueue([request(n, payload={"z": n, "a": {"y": 1, "b": 2}}) for n in range(3)])
    await gateway.link.export_once(at(0))
    row = await gateway.pool.fetchrow(SELECT)
    batch = OutboundBatchRow.from_record(row)
    renders = []
    for folder in (tmp_path / "one", tmp_path / "two"):
        folder.mkdir()
        async with gateway.pool.acquire() as conn:
            rendered = await render_batch(conn, batch, folder, gateway.key)
        assert rendered.record_kinds == {"request": 3}
        renders.append(rendered.published.path.read_bytes())
    assert renders[0] == renders[1] == gateway.outbox_files()[0].read_bytes()
    lines = renders[0].splitlines()
    # What batchformat's writer would write from the struct itself: dict keys sorted.
    first = request(0, payload={"z": 0, "a": {"y": 1, "b": 2}})
    assert lines[1] == msgspec.json.Encoder(order="deterministic").encode(first)
    assert b'"payload":{"a":{"b":2,"y":1},"z":0}' in lines[1]
    header, records = read_batch(gateway.outbox_files()[0], key_dir)
    assert (header.seq, header.created_at) == (1, T0)
    assert records[0] == first
    assert msgspec.json.decode(lines[0])["batch_id"] == str(batch.batch_id)
