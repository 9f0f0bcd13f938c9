"""Delivering one claimed batch, in process: every input an agent can meet."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from batchformat import BatchName, SigningKey, TrustedKeys, verify_batch_file
from batchformat.claims import ClaimFolder
from batchformat.fsops import UnsafeTargetFolder
from tests.transfer_agent.conftest import Site
from transfer_agent.config import RouteConfig, load_config
from transfer_agent.delivery import Cancelled, Outcome, RouteDelivery

NEVER = threading.Event()


def route(site: Site, **options: object) -> RouteConfig:
    return load_config(site.write_config(**options)).routes[0]


def claim(site: Site, batch: Path) -> Path:
    folder = site.source / ".in-flight" / "test"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / batch.name
    batch.rename(target)
    return target


def reason(site: Site, name: str) -> dict[str, object]:
    data = (site.source / "quarantine" / f"{name}.reason.json").read_bytes()
    result: dict[str, object] = json.loads(data)
    return result


def test_a_good_batch_is_delivered_verified_and_archived(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch(5)
    result = delivery.deliver(claim(site, batch), NEVER)
    assert result.outcome is Outcome.DELIVERED
    assert site.delivered() == [batch.name]
    assert verify_batch_file(site.destination / batch.name, site.trusted).record_count == 5
    assert (site.source / "sent" / batch.name).exists()
    assert not list(site.destination.glob(".*"))


def test_delete_mode_removes_the_source_copy(site: Site) -> None:
    delivery = RouteDelivery(route(site, after_delivery="delete"), site.trusted)
    claimed = claim(site, site.batch())
    assert delivery.deliver(claimed, NEVER).outcome is Outcome.DELIVERED
    assert not claimed.exists()
    assert not (site.source / "sent").exists()


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda data: data.replace(b'"n":1', b'"n":7'), "digest_mismatch"),
        (lambda data: data[: len(data) // 2], "trailer_missing"),
        (lambda data: b"", "header_missing"),
        (
            lambda data: data.replace(b'"record_count":3', b'"record_count":4'),
            "record_count_mismatch",
        ),
    ],
)
def test_a_damaged_batch_is_quarantined_with_its_reason(
    site: Site, damage: object, code: str
) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch(3)
    batch.write_bytes(damage(batch.read_bytes()))  # type: ignore[operator]
    result = delivery.deliver(claim(site, batch), NEVER)
    assert result.outcome is Outcome.QUARANTINED
    assert site.delivered() == []
    assert not list(site.destination.iterdir()), "no partial copy may remain"
    assert site.quarantined() == [batch.name]
    assert reason(site, batch.name)["code"] == code


def test_a_batch_signed_by_an_unknown_key_is_quarantined(
    site: Site, stranger_key: SigningKey
) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch(key=stranger_key)
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.QUARANTINED
    assert reason(site, batch.name)["code"] == "unknown_key"


def test_a_renamed_batch_is_quarantined(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch()
    name = BatchName.parse(batch.name)
    assert name is not None
    renamed = batch.with_name(BatchName(name.source, name.seq + 100, name.batch_id).file_name)
    batch.rename(renamed)
    assert delivery.deliver(claim(site, renamed), NEVER).outcome is Outcome.QUARANTINED
    assert reason(site, renamed.name)["code"] == "name_mismatch"


def test_a_batch_for_another_network_is_quarantined(site: Site) -> None:
    delivery = RouteDelivery(route(site, expect_destination="elsewhere"), site.trusted)
    batch = site.batch()
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.QUARANTINED
    assert reason(site, batch.name)["code"] == "destination_mismatch"


def test_an_oversized_line_is_quarantined(site: Site) -> None:
    delivery = RouteDelivery(route(site, max_line_bytes=4096), site.trusted)
    batch = site.batch(2, pad=10_000)
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.QUARANTINED
    assert reason(site, batch.name)["code"] == "line_too_long"


def test_a_symlink_slipped_into_flight_is_quarantined_not_followed(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    outside = site.batch(folder=site.root)
    folder = site.source / ".in-flight" / "test"
    folder.mkdir(parents=True)
    link = folder / outside.name
    link.symlink_to(outside)
    assert delivery.deliver(link, NEVER).outcome is Outcome.QUARANTINED
    assert site.delivered() == []
    assert outside.exists()
    assert reason(site, outside.name)["code"] == "not_a_regular_file"


def test_a_batch_already_at_the_destination_is_not_copied_again(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch()
    (site.destination / batch.name).write_bytes(batch.read_bytes())
    before = (site.destination / batch.name).stat().st_ino
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.ALREADY_DELIVERED
    assert (site.destination / batch.name).stat().st_ino == before
    assert (site.source / "sent" / batch.name).exists()


def test_a_batch_in_the_receivers_archive_is_not_delivered_again(site: Site) -> None:
    archive = site.destination / "archive"
    archive.mkdir()
    delivery = RouteDelivery(route(site, destination_archive=str(archive)), site.trusted)
    batch = site.batch()
    (archive / batch.name).write_bytes(batch.read_bytes())
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.ALREADY_DELIVERED
    assert site.delivered() == []


def test_a_different_batch_under_a_delivered_name_is_quarantined(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch()
    (site.destination / batch.name).write_bytes(b"something else entirely\n")
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.QUARANTINED
    assert reason(site, batch.name)["code"] == "name_conflict"
    assert (site.destination / batch.name).read_bytes() == b"something else entirely\n"


def test_a_part_file_left_by_a_killed_agent_is_reclaimed(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch()
    name = BatchName.parse(batch.name)
    assert name is not None
    (site.destination / name.part_name).write_bytes(b"half a copy")
    assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.DELIVERED
    assert [p.name for p in site.destination.iterdir()] == [batch.name]


def test_a_copy_being_written_by_a_live_process_is_left_alone(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch()
    name = BatchName.parse(batch.name)
    assert name is not None
    fd = os.open(site.destination / name.part_name, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held by this process, as by another agent
    try:
        claimed = claim(site, batch)
        assert delivery.deliver(claimed, NEVER).outcome is Outcome.BUSY
        assert claimed.exists()
    finally:
        os.close(fd)


def test_a_full_destination_pauses_without_losing_the_batch(site: Site) -> None:
    delivery = RouteDelivery(route(site, min_free_bytes=1 << 62), site.trusted)
    claimed = claim(site, site.batch())
    assert delivery.deliver(claimed, NEVER).outcome is Outcome.NO_SPACE
    assert claimed.exists()
    assert site.delivered() == []


def test_shutdown_during_a_copy_abandons_it_cleanly(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    claimed = claim(site, site.batch(20_000, pad=100))  # a few MB: several copy chunks
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        delivery.deliver(claimed, stop)
    assert claimed.exists()
    assert list(site.destination.iterdir()) == []


def test_the_archive_keeps_batches_for_archive_days(site: Site) -> None:
    delivery = RouteDelivery(route(site, archive_days=2), site.trusted)
    old, new = site.batch(), site.batch()
    for batch in (old, new):
        assert delivery.deliver(claim(site, batch), NEVER).outcome is Outcome.DELIVERED
    three_days_ago = (site.source / "sent" / old.name).stat().st_mtime - 3 * 86400
    os.utime(site.source / "sent" / old.name, (three_days_ago, three_days_ago))
    assert delivery.purge_archive() == 1
    assert sorted(p.name for p in (site.source / "sent").iterdir()) == [new.name]


def test_a_dead_agents_claims_are_adopted(site: Site) -> None:
    root = site.source / ".in-flight"
    dead = ClaimFolder(root, "dead")
    dead.open()
    batch = site.batch()
    batch.rename(dead.path / batch.name)
    live = ClaimFolder(root, "live")
    live.open()
    assert live.adopt_orphans() == [], "a live agent's claims are never taken"
    assert dead._lock_fd is not None
    os.close(dead._lock_fd)  # as if its process had died
    dead._lock_fd = None
    assert live.adopt_orphans() == [live.path / batch.name]
    assert not dead.path.exists()
    live.close()


def test_trusted_keys_are_loaded_per_route(site: Site) -> None:
    config = route(site)
    assert TrustedKeys.from_files(config.trusted_keys).keys() == site.trusted.keys()


def test_the_delivered_copy_is_private_whatever_the_umask(site: Site) -> None:
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch(1)
    os.chmod(batch, 0o644)  # as a producer with a loose umask left it
    previous = os.umask(0o000)
    try:
        result = delivery.deliver(claim(site, batch), NEVER)
    finally:
        os.umask(previous)
    assert result.outcome is Outcome.DELIVERED
    assert stat.S_IMODE((site.destination / batch.name).stat().st_mode) == 0o640


def test_a_symlinked_sent_folder_is_refused_and_nothing_goes_through_it(site: Site) -> None:
    elsewhere = site.source.parent / "elsewhere"
    elsewhere.mkdir()
    (site.source / "sent").symlink_to(elsewhere)
    delivery = RouteDelivery(route(site), site.trusted)
    claimed = claim(site, site.batch(1))
    with pytest.raises(UnsafeTargetFolder, match="unsafe_target_folder"):
        delivery.deliver(claimed, NEVER)
    assert list(elsewhere.iterdir()) == []
    assert claimed.exists()


def test_a_symlinked_quarantine_is_refused_by_the_agent(site: Site) -> None:
    elsewhere = site.source.parent / "elsewhere-q"
    elsewhere.mkdir()
    (site.source / "quarantine").symlink_to(elsewhere)
    delivery = RouteDelivery(route(site), site.trusted)
    batch = site.batch(1)
    batch.write_bytes(batch.read_bytes().replace(b"}", b"} ", 1))  # damaged
    claimed = claim(site, batch)
    with pytest.raises(UnsafeTargetFolder, match="unsafe_target_folder"):
        delivery.deliver(claimed, NEVER)
    assert list(elsewhere.iterdir()) == []
    assert claimed.exists()
