"""Replay from the archive (docs/operations.md): an archived batch moved back into the inbox is
applied again when the database has forgotten it (a restore), and only acknowledged when not."""

from __future__ import annotations

from batchformat import load_signing_key
from tests.link.conftest import SideFactory, at, publish, request


async def test_an_archived_batch_moved_back_is_applied_only_if_forgotten(
    sides: SideFactory,
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(sides.key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir
    publish(inbox, key, [request(1), request(2)], 1)
    [first] = (await processor.link.import_once(at(0))).batches
    assert first.outcome == "applied"
    [archived] = processor.settings.archive_dir.iterdir()

    archived.rename(inbox / archived.name)  # remembered: acknowledged again, not applied
    [again] = (await processor.link.import_once(at(1))).batches
    assert again.outcome == "duplicate"
    assert len(await processor.applied()) == 2

    # A restore from before the batch: its record and its effects are gone.
    await processor.pool.execute("DELETE FROM applied")
    await processor.pool.execute("DELETE FROM link_inbound_batch")
    await processor.pool.execute(
        "UPDATE link_peer SET inbound_max_seq = 0, inbound_contiguous_seq = 0"
    )
    archived.rename(inbox / archived.name)
    [replayed] = (await processor.link.import_once(at(2))).batches
    assert replayed.outcome == "applied"
    assert [kind for kind, _ in await processor.applied()] == ["request", "request"]
    assert (await processor.link.state(at(3))).missing_batches == 0
    assert archived.exists()  # archived again
