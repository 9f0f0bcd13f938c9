"""After a restore to a point in time, the link heals by replay from the archive: the batch
applied after the target is forgotten by the recovered database, applied again when the
archive is moved back, and the one before it is only acknowledged (docs/operations.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from batchformat import load_signing_key
from servicekit.pitr import LocalServer, base_backup, prepare_recovery
from tests.link.conftest import SideFactory, _create_scratch_tables, at, migrated, publish, request
from tests.pitr_fixtures import (  # noqa: F401 - fixtures, by name
    archiving_server,
    pg_bin,
    pitr_work,
    recovered_server,
    switch_and_wait_archived,
)


async def test_a_restore_to_a_point_in_time_heals_by_replaying_the_archive(
    sides: SideFactory,
    archiving_server: tuple[LocalServer, Path],  # noqa: F811 - the fixture
    pitr_work: Path,  # noqa: F811
) -> None:
    primary, wal_archive = archiving_server
    url = primary.url()
    await migrated(url)
    await _create_scratch_tables(url)
    base = await asyncio.to_thread(base_backup, url, pitr_work / "base", pg_bin())
    processor = await sides.side("processor", url=url)
    key = load_signing_key(sides.key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir
    publish(inbox, key, [request(1), request(2)], 1)
    [first] = (await processor.link.import_once(at(0))).batches
    assert first.outcome == "applied"
    await asyncio.sleep(0.05)
    noted = datetime.now(UTC)
    await asyncio.sleep(0.05)
    publish(inbox, key, [request(3)], 2)
    [second] = (await processor.link.import_once(at(1))).batches
    assert second.outcome == "applied"
    await switch_and_wait_archived(url)
    await processor.pool.close()

    recovered = recovered_server(pitr_work)
    await asyncio.to_thread(
        prepare_recovery, base, wal_archive, recovered.pgdata, noted, owner=recovered.owner
    )
    await asyncio.to_thread(recovered.start)
    try:
        restored = await sides.side("processor", url=recovered.url())
        assert len(await restored.applied()) == 2  # batch 2 is forgotten
        # Replay: every archived batch back into the inbox.
        for archived in sorted(restored.settings.archive_dir.iterdir()):
            archived.rename(inbox / archived.name)
        outcomes = sorted(b.outcome for b in (await restored.link.import_once(at(2))).batches)
        assert outcomes == ["applied", "duplicate"]
        assert len(await restored.applied()) == 3
        assert (await restored.link.state(at(3))).missing_batches == 0
        await restored.pool.close()
    finally:
        await asyncio.to_thread(recovered.stop)
