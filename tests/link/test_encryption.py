"""Confidential batches on the link: encrypted to the peer, keys rotated without a pause,
a batch for a key no longer held quarantined with its own reason and recovered by a resend."""

from __future__ import annotations

import json
from pathlib import Path

from airlink.encryption import LinkEncryption
from batchformat import BatchName, DecryptionKeys, RecipientKeys
from tests.link.conftest import Side, SideFactory, at, request


def to_processor(key_dir: Path, *recipient_ids: str) -> LinkEncryption:
    """The gateway's side: encrypt to these processor keys."""
    return LinkEncryption(
        RecipientKeys.from_files([key_dir / f"{i}.agepub" for i in recipient_ids]),
        DecryptionKeys.from_files([key_dir / "request-net-enc-1.agekey"]),
    )


def processor_holding(key_dir: Path, *identity_ids: str) -> LinkEncryption:
    """The processor's side: decrypt with these keys (it sends in clear here)."""
    return LinkEncryption(
        None, DecryptionKeys.from_files([key_dir / f"{i}.agekey" for i in identity_ids])
    )


def header_of(path: Path) -> dict[str, object]:
    with path.open("rb") as file:
        header: dict[str, object] = json.loads(file.readline())
    return header


async def send(gateway: Side, second: float, *numbers: int) -> Path:
    await gateway.enqueue([request(n) for n in numbers])
    [sent] = (await gateway.link.export_once(at(second))).batches
    name = BatchName("request-net", sent.seq, sent.batch_id)
    return gateway.settings.outbox_dir / name.file_name


async def test_batches_cross_encrypted_and_are_applied(sides: SideFactory) -> None:
    keys = sides.key_dir
    gateway = await sides.side("gateway", encryption=to_processor(keys, "response-net-enc-1"))
    processor = await sides.side(
        "processor", encryption=processor_holding(keys, "response-net-enc-1")
    )
    path = await send(gateway, 0, 1, 2)
    assert header_of(path)["recipients"] == ["response-net-enc-1"]
    assert str(request(1).id).encode() not in path.read_bytes()
    [received] = (await processor.link.import_once(at(1))).batches
    assert received.outcome == "applied"
    assert [kind for kind, _ in await processor.applied()] == ["request", "request"]


async def test_a_receiver_refuses_unencrypted_batches_unless_allowed(sides: SideFactory) -> None:
    keys = sides.key_dir
    gateway = await sides.side("gateway")  # sends batchformat/1
    processor = await sides.side(
        "processor", encryption=processor_holding(keys, "response-net-enc-1")
    )
    path = await send(gateway, 0, 1)
    assert header_of(path)["format"] == "batchformat/1"
    await processor.link.import_once(at(1))
    assert processor.quarantined() == [path.name]
    reason = processor.settings.quarantine_dir / f"{path.name}.reason.json"
    assert json.loads(reason.read_text())["code"] == "unencrypted_refused"
    assert await processor.applied() == []


async def test_both_keys_rotate_while_traffic_flows_and_nothing_is_lost(
    sides: SideFactory,
) -> None:
    """docs/operations.md, "Rotating keys": each step is a restart of one side."""
    keys = sides.key_dir
    gateway = await sides.side("gateway", encryption=to_processor(keys, "response-net-enc-1"))
    processor = await sides.side(
        "processor", encryption=processor_holding(keys, "response-net-enc-1")
    )
    in_transit = [await send(gateway, 0, 1)]  # old keys, not imported yet

    # 1. The receiver adds its new decryption key and trusts the sender's new signing key.
    processor = await sides.side(
        "processor", url=processor.url,
        encryption=processor_holding(keys, "response-net-enc-1", "response-net-enc-2"),
        trusted_key_ids=["request-net-1", "request-net-2"],
    )  # fmt: skip
    # 2. The sender encrypts to both and signs with its new key.
    gateway = await sides.side(
        "gateway", url=gateway.url, signing_key_id="request-net-2",
        encryption=to_processor(keys, "response-net-enc-1", "response-net-enc-2"),
    )  # fmt: skip
    in_transit.append(await send(gateway, 1, 2))
    assert header_of(in_transit[-1])["recipients"] == ["response-net-enc-1", "response-net-enc-2"]
    # 3. The sender drops the old recipient.
    gateway = await sides.side(
        "gateway", url=gateway.url, signing_key_id="request-net-2",
        encryption=to_processor(keys, "response-net-enc-2"),
    )  # fmt: skip
    in_transit.append(await send(gateway, 2, 3))
    report = await processor.link.import_once(at(3))
    assert [b.outcome for b in report.batches] == ["applied"] * 3
    # 4. After the window, the receiver drops the old keys: an old-key batch is refused.
    processor = await sides.side(
        "processor", url=processor.url,
        encryption=processor_holding(keys, "response-net-enc-2"),
        trusted_key_ids=["request-net-2"],
    )  # fmt: skip
    in_transit.append(await send(gateway, 4, 4))
    assert [b.outcome for b in (await processor.link.import_once(at(5))).batches] == ["applied"]
    assert processor.quarantined() == []
    assert len(await processor.applied()) == 4

    old_gateway = await sides.side(
        "gateway", encryption=to_processor(keys, "response-net-enc-1"),
    )  # fmt: skip
    stale = await send(old_gateway, 6, 5)
    await processor.link.import_once(at(7))
    assert processor.quarantined() == [stale.name]
    reason = processor.settings.quarantine_dir / f"{stale.name}.reason.json"
    assert json.loads(reason.read_text())["code"] == "unknown_key"


async def test_a_batch_for_a_key_no_longer_held_is_quarantined_then_recovered_by_a_resend(
    sides: SideFactory,
) -> None:
    keys = sides.key_dir
    gateway = await sides.side("gateway", encryption=to_processor(keys, "response-net-enc-1"))
    processor = await sides.side(
        "processor", encryption=processor_holding(keys, "response-net-enc-2")
    )
    path = await send(gateway, 0, 1)
    await processor.link.import_once(at(1))
    assert processor.quarantined() == [path.name]
    reason = processor.settings.quarantine_dir / f"{path.name}.reason.json"
    assert json.loads(reason.read_text())["code"] == "unknown_recipient_key"
    # The runbook: give the sender the receiver's current key; its outbox renders the
    # unacknowledged batch again, encrypted to that key, when the resend is due.
    gateway = await sides.side(
        "gateway", url=gateway.url, encryption=to_processor(keys, "response-net-enc-2")
    )
    resend_at = gateway.settings.resend_after_s + 1
    report = await gateway.link.export_once(at(resend_at))
    assert ("resend", 1) in [(b.kind, b.seq) for b in report.batches]
    assert header_of(path)["recipients"] == ["response-net-enc-2"]
    await processor.link.import_once(at(resend_at + 1))
    assert [kind for kind, _ in await processor.applied()] == ["request"]
